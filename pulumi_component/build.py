"""The stack description's resources as Pulumi resources: each described resource becomes the pulumi-aws
resource of its kind, with its settings as arguments and the deferred values filled in from the component's
arguments and the resources made before it.

A value derived from inputs a program may compute (`ZaeLimiterArgs.table_name`, `tags`, the ARNs) is plain
when every input is plain, so a program with a literal table name hands the engine exactly the strings it
always did, and an Output when one is computed (a table name built from the stack's name, tags from another
resource).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Optional, Sequence

import pulumi
import pulumi_aws as aws

from . import names
from .args import ZaeLimiterArgs, is_computed
from .deferred import AggregatorCode, Attribute, Document, Name, Option, PerEngine, Text, walk
from .lambda_package import lambda_files
from .stack_description import (
    ALARM,
    FUNCTION,
    LOG_GROUP,
    MAPPING,
    POLICY,
    QUEUE,
    ROLE,
    ROLE_POLICY,
    TABLE,
    Kind,
    Resource,
)

RESOURCE_CLASSES: Mapping[Kind, type[pulumi.CustomResource]] = {
    TABLE: aws.dynamodb.Table,
    QUEUE: aws.sqs.Queue,
    LOG_GROUP: aws.cloudwatch.LogGroup,
    ROLE: aws.iam.Role,
    ROLE_POLICY: aws.iam.RolePolicy,
    FUNCTION: aws.lambda_.Function,
    MAPPING: aws.lambda_.EventSourceMapping,
    ALARM: aws.cloudwatch.MetricAlarm,
    POLICY: aws.iam.Policy,
}


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


def lambda_archive(files: dict[str, bytes] | None = None) -> pulumi.AssetArchive:
    """The function's code as an archive the engine zips and hashes (same sources, same hash)."""
    files = lambda_files() if files is None else files
    return pulumi.AssetArchive({path: pulumi.StringAsset(content.decode("utf-8")) for path, content in files.items()})


class Builder:
    """Makes the described resources of one component's arguments. `logical_name(suffix)` names each one;
    `known` holds resources made elsewhere that these refer to (the table, for the aggregator)."""

    def __init__(
        self,
        args: ZaeLimiterArgs,
        logical_name: Callable[[str], str],
        known: Mapping[str, pulumi.Resource] | None = None,
        code: pulumi.Archive | None = None,
    ) -> None:
        self.args = args
        self.logical_name = logical_name
        self.created: dict[str, pulumi.Resource] = dict(known or {})
        self.code = code

    def create(self, resource: Resource, parent: pulumi.Resource, aliases: Sequence[pulumi.Alias] = ()) -> Any:
        arguments = {key: self.value(value) for key, value in resource.settings.items()}
        opts = pulumi.ResourceOptions(
            parent=parent,
            depends_on=[self.created[part] for part in resource.depends_on] or None,
            aliases=list(aliases) or None,
        )
        made = RESOURCE_CLASSES[resource.kind](self.logical_name(resource.suffix), **arguments, opts=opts)
        self.created[resource.part] = made
        return made

    def value(self, value: Any) -> Any:
        return walk(value, self._fill)

    def _fill(self, value: Any) -> Any:
        if isinstance(value, Option):
            return tags_of(self.args) if value.name == "tags" else getattr(self.args, value.name)
        if isinstance(value, Attribute):
            return getattr(self.created[value.part], value.name)
        if isinstance(value, Name):
            return derived(lambda root: names.name(value.rule, root, value.key), self.args.table_name)
        if isinstance(value, Text):
            keys = list(value.parts)
            filled = [self.value(value.parts[key]) for key in keys]
            return derived(lambda *parts: value.pattern.format(**dict(zip(keys, parts))), *filled)
        if isinstance(value, Document):
            filled = [self.value(part) for part in value.parts]
            return derived(lambda *parts: json.dumps(value.build(*parts), sort_keys=True), *filled)
        if isinstance(value, AggregatorCode):
            return self.code if self.code is not None else lambda_archive()
        if isinstance(value, PerEngine):
            return self.value(value.pulumi)
        raise TypeError(f"not a deferred value: {value!r}")
