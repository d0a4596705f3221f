"""`ZaeLimiter`: every AWS piece of a zae-limiter deployment, as one Pulumi ComponentResource.

    from pulumi_component import ZaeLimiter, ZaeLimiterArgs
    limiter = ZaeLimiter("rate-limits", ZaeLimiterArgs(table_name="rate_limits", enable_alarms=True))
    pulumi.export("table_arn", limiter.table_arn)

Every child is parented to the component and named after it, so two components in one program do not
clash and `pulumi destroy` removes them as one tree.

No `from __future__ import annotations`: the component-provider host (provider_host.py) infers the
schema other languages get from these annotations at run time: `args` of `__init__` (its inputs) and the
`pulumi.Output` attributes (its outputs).
"""

from typing import Any, Optional

import pulumi
import pulumi_aws as aws

from . import names
from .aggregator_function import Aggregator, outputs as aggregator_outputs
from .alarms import aggregator_alarm_specs, create_alarms, table_alarm_specs
from .app_policies import POLICIES, create_application_policies
from .args import ZaeLimiterArgs, check_args
from .inputs import TABLE_MARK, with_table_name
from .table import create_table

TYPE_TOKEN = "zae-limiter:index:ZaeLimiter"
# The component's outputs, in the order they are registered (and exported by the program).
OUTPUT_KEYS = (
    "table_name",
    "table_arn",
    "stream_arn",
    "function_name",
    "function_arn",
    "log_group_name",
    "acquire_policy_arn",
    "full_access_policy_arn",
    "read_only_policy_arn",
    "dlq_url",
)


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

        self.table = create_table(names.child(name, "table"), args, self)
        self.aggregator = Aggregator(name, args, self.table, self) if args.enable_aggregator else None
        self.policies = create_application_policies(name, args, self.table, self)

        self.alarms: list[aws.cloudwatch.MetricAlarm] = []
        if args.enable_alarms:
            # Built with a mark for the table name, filled in after: the name may be an Output.
            specs = table_alarm_specs(TABLE_MARK)
            if self.aggregator is not None:
                specs += aggregator_alarm_specs(
                    TABLE_MARK, self.aggregator.function_name, args.lambda_timeout_s, self.aggregator.dlq.name
                )
            self.alarms = create_alarms(name, args, [with_table_name(spec, args.table_name) for spec in specs], self)

        values: dict[str, Any] = {
            "table_name": self.table.name,
            "table_arn": self.table.arn,
            "stream_arn": self.table.stream_arn,
            **aggregator_outputs(self.aggregator),
            **{key: self.policies[role].arn for role, (key, _, _) in POLICIES.items()},
        }
        for key in OUTPUT_KEYS:
            setattr(self, key, values[key])
        self.register_outputs({key: values[key] for key in OUTPUT_KEYS})

    @property
    def outputs(self) -> dict[str, Any]:
        """Every output by key (None where the aggregator is disabled)."""
        return {key: getattr(self, key) for key in OUTPUT_KEYS}
