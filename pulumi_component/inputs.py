"""Values the component derives from inputs a program may compute (`ZaeLimiterArgs.table_name`, `tags`):
plain when every input is plain, so a program with a literal table name hands the engine exactly the
strings it always did, and an Output when one is computed (a table name built from the stack's name in a
YAML program, tags from another resource)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Mapping, Optional

import pulumi

from .alarm_specs import AlarmSpec
from .args import ZaeLimiterArgs, is_computed

# Stands for the table name in alarm definitions built before it is known (alarm_specs.py is plain data,
# shared with the CloudFormation template, which does the same with "${TableName}").
TABLE_MARK = "\x00table\x00"


def derived(fn: Callable[..., Any], *values: Any) -> Any:
    """`fn(*values)`, now when the values are plain, else as an Output."""
    if any(is_computed(value) for value in values):
        return pulumi.Output.all(*values).apply(lambda resolved: fn(*resolved))
    return fn(*values)


def tags_of(args: ZaeLimiterArgs) -> Optional[pulumi.Input[Mapping[str, str]]]:
    """The tags every resource gets (None rather than an empty mapping: no tags block at all)."""
    if is_computed(args.tags):
        return args.tags
    return dict(args.tags) or None  # type: ignore[arg-type]


def _fill(text: Any, table_name: Any) -> Any:
    if isinstance(text, str) and TABLE_MARK in text:
        return derived(lambda name: text.replace(TABLE_MARK, name), table_name)
    return text


def with_table_name(spec: AlarmSpec, table_name: Any) -> AlarmSpec:
    """An alarm definition built with TABLE_MARK, with the table name put in."""
    return replace(
        spec,
        description=_fill(spec.description, table_name),
        dimensions={key: _fill(value, table_name) for key, value in spec.dimensions.items()},
    )
