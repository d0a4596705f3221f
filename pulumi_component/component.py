"""`ZaeLimiter`: every AWS piece of a zae-limiter deployment, as one Pulumi ComponentResource.

    from pulumi_component import ZaeLimiter, ZaeLimiterArgs
    limiter = ZaeLimiter("rate-limits", ZaeLimiterArgs(table_name="rate_limits", enable_alarms=True))
    pulumi.export("table_arn", limiter.table_arn)

Every child is parented to the component and named after it, so two components in one program do not
clash and `pulumi destroy` removes them as one tree: the table, the managed policies and the table's alarms
directly, the aggregator's resources through its own component, `ZaeLimiterAggregator` (`<name>-aggregator`,
aggregator.py). What each resource is, and its settings: `stack_description.py`, which the CloudFormation
template is made from too.

No `from __future__ import annotations`: the component-provider host (provider_host.py) infers the
schema other languages get from these annotations at run time: `args` of `__init__` (its inputs) and the
`pulumi.Output` attributes (its outputs).
"""

from typing import Any, Optional

import pulumi
import pulumi_aws as aws

from zae_limiter.iam import APPLICATION_POLICIES

from . import names
from .aggregator import ZaeLimiterAggregator
from .args import ZaeLimiterArgs, check_args
from .build import Builder
from .stack_description import AGGREGATOR_PART, ALARM, LIMITER, OUTPUT_KEYS, OUTPUTS, describe

TYPE_TOKEN = "zae-limiter:index:ZaeLimiter"
__all__ = ["OUTPUT_KEYS", "TYPE_TOKEN", "ZaeLimiter"]


class ZaeLimiter(pulumi.ComponentResource):
    """A zae-limiter deployment: the DynamoDB table, the usage aggregator Lambda on its stream, optional
    CloudWatch alarms and the managed policies applications attach to their roles (acquire-only, full
    access, read-only). The aggregator's outputs are absent when enable_aggregator is false."""

    table_name: pulumi.Output[str]
    """The table's name."""
    table_arn: pulumi.Output[str]
    """The table's ARN."""
    stream_arn: pulumi.Output[str]
    """The ARN of the table's stream (NEW_AND_OLD_IMAGES)."""
    function_name: Optional[pulumi.Output[str]]
    """The usage aggregator's function name."""
    function_arn: Optional[pulumi.Output[str]]
    """The usage aggregator's function ARN."""
    log_group_name: Optional[pulumi.Output[str]]
    """The usage aggregator's log group."""
    acquire_policy_arn: pulumi.Output[str]
    """Managed policy: acquire, adjust, refund and check availability."""
    full_access_policy_arn: pulumi.Output[str]
    """Managed policy: everything the runtime does, entities and limits included."""
    read_only_policy_arn: pulumi.Output[str]
    """Managed policy: read entities, limits, availability and usage."""
    dlq_url: Optional[pulumi.Output[str]]
    """The URL of the queue of stream records the aggregator gave up on."""

    def __init__(self, name: str, args: ZaeLimiterArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        args = check_args(args)  # before registering anything, so a bad argument leaves no half component
        super().__init__(TYPE_TOKEN, name, None, opts)
        self.args = args
        build = Builder(args, lambda suffix: names.child(name, suffix))
        owned = [resource for resource in describe(args) if resource.owner == LIMITER]
        table, others = owned[0], owned[1:]
        self.table: aws.dynamodb.Table = build.create(table, self)
        self.aggregator: Optional[ZaeLimiterAggregator] = None
        if args.enable_aggregator:
            self.aggregator = ZaeLimiterAggregator(
                names.child(name, AGGREGATOR_PART), args, self.table, pulumi.ResourceOptions(parent=self), moved_from=self
            )
        for resource in others:
            build.create(resource, self)
        self.policies: dict[str, aws.iam.Policy] = {
            role: build.created[part] for role, (_, part, _) in APPLICATION_POLICIES.items()
        }
        self.alarms: list[aws.cloudwatch.MetricAlarm] = [build.created[r.part] for r in others if r.kind is ALARM]
        if self.aggregator is not None:
            self.alarms += self.aggregator.alarms

        made = {**build.created, **(self.aggregator.resources if self.aggregator is not None else {})}
        values = {key: getattr(made[ref.part], ref.name) if ref.part in made else None for key, ref in OUTPUTS.items()}
        for key in OUTPUT_KEYS:
            setattr(self, key, values[key])
        self.register_outputs(values)

    @property
    def outputs(self) -> dict[str, Any]:
        """Every output by key (None where the aggregator is disabled)."""
        return {key: getattr(self, key) for key in OUTPUT_KEYS}
