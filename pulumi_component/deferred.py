"""The values a stack description (`stack_description.py`) leaves to each engine to fill in. Plain data, no
Pulumi import. The Pulumi component fills them in `build.py`, the CloudFormation template in
`cloudformation.py`:

| value | the component | the template |
|---|---|---|
| `Option("log_retention_days")` | the argument (a string, a number, or an Output) | its parameter (`{"Ref": "LogRetentionDays"}`) where it is one, else the value written in |
| `Attribute("table", "stream_arn")` | the resource's output | `Fn::GetAtt` / `Ref`, as AWS documents the type's return values |
| `Name("function")` | the rule of `names.py` applied to the table name | the rule applied to `${AWS::StackName}` |
| `Text("... {table} ...", table=...)` | a string (an Output when a part is one) | an `Fn::Sub` |
| `Document(build, parts)` | `build(*parts)` as JSON text (what IAM takes in Pulumi) | `build(*parts)` as an object |
| `AggregatorCode()` | the archive built from `aggregator/` | the code in S3, or a placeholder (CodeS3Bucket) |
| `PerEngine(pulumi, cloudformation)` | the first | the second: a setting that must differ, with its reason where it is used |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class Option:
    """A StackOptions field (or `table_name`)."""

    name: str


@dataclass(frozen=True)
class Attribute:
    """An attribute of another resource of the description, by its part: `arn`, `stream_arn`, `name`, `url`,
    `id` (Pulumi's output names)."""

    part: str
    name: str


@dataclass(frozen=True)
class Name:
    """A physical name derived from the engine's name root by a rule of `names.py` (`function`,
    `log_group`, `alarm` with its key)."""

    rule: str
    key: str = ""


@dataclass(frozen=True)
class Text:
    """`pattern.format(**parts)`, each part a plain value or one of the values above."""

    pattern: str
    parts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Document:
    """An IAM policy document: `build(*parts)`, each part resolved to a plain string first."""

    build: Callable[..., dict[str, Any]]
    parts: tuple[Any, ...] = ()


@dataclass(frozen=True)
class AggregatorCode:
    """The aggregator's code."""


@dataclass(frozen=True)
class PerEngine:
    pulumi: Any
    cloudformation: Any


def walk(value: Any, leaf: Callable[[Any], Any]) -> Any:
    """`value` with every deferred value replaced by `leaf(value)`, through dicts and lists."""
    if isinstance(value, dict):
        return {key: walk(item, leaf) for key, item in value.items()}
    if isinstance(value, list):
        return [walk(item, leaf) for item in value]
    if isinstance(value, (Option, Attribute, Name, Text, Document, AggregatorCode, PerEngine)):
        return leaf(value)
    return value
