"""`ZaeLimiter`: every AWS piece of a zae-limiter deployment, as one Pulumi ComponentResource.

    from pulumi_component import ZaeLimiter, ZaeLimiterArgs
    limiter = ZaeLimiter("rate-limits", ZaeLimiterArgs(table_name="rate_limits", enable_alarms=True))
    pulumi.export("table_arn", limiter.table_arn)

Every child is parented to the component and named after it, so two components in one program do not
clash and `pulumi destroy` removes them as one tree.
"""

from __future__ import annotations

from typing import Any, Optional

import pulumi
import pulumi_aws as aws

from . import names
from .aggregator_function import Aggregator, outputs as aggregator_outputs
from .alarms import aggregator_alarm_specs, create_alarms, table_alarm_specs
from .app_policies import POLICIES, create_application_policies
from .args import ZaeLimiterArgs, check_args
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
    """The table, the usage aggregator, optional alarms and the applications' managed policies.

    Outputs (also attributes): table_name, table_arn, stream_arn, function_name, function_arn,
    log_group_name, acquire_policy_arn, full_access_policy_arn, read_only_policy_arn, dlq_url. The
    aggregator's (function_*, log_group_name, dlq_url) are None when `enable_aggregator` is False.
    """

    table_name: pulumi.Output[str]
    table_arn: pulumi.Output[str]
    stream_arn: pulumi.Output[str]
    function_name: Optional[pulumi.Output[str]]
    function_arn: Optional[pulumi.Output[str]]
    log_group_name: Optional[pulumi.Output[str]]
    acquire_policy_arn: pulumi.Output[str]
    full_access_policy_arn: pulumi.Output[str]
    read_only_policy_arn: pulumi.Output[str]
    dlq_url: Optional[pulumi.Output[str]]

    def __init__(self, name: str, args: ZaeLimiterArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        args = check_args(args)  # before registering anything, so a bad argument leaves no half component
        super().__init__(TYPE_TOKEN, name, None, opts)
        self.args = args

        self.table = create_table(names.child(name, "table"), args, self)
        self.aggregator = Aggregator(name, args, self.table, self) if args.enable_aggregator else None
        self.policies = create_application_policies(name, args, self.table, self)

        self.alarms: list[aws.cloudwatch.MetricAlarm] = []
        if args.enable_alarms:
            specs = table_alarm_specs(args.table_name)
            if self.aggregator is not None:
                specs += aggregator_alarm_specs(
                    args.table_name, self.aggregator.function_name, args.lambda_timeout_s, self.aggregator.dlq.name
                )
            self.alarms = create_alarms(name, args, specs, self)

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
