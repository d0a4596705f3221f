"""`ZaeLimiterAggregator`: the usage aggregator, a ComponentResource of its own under `ZaeLimiter` (as awsx
and eks nest theirs): the Lambda fed by the table's stream, its role and inline policy, its log group, the
stream's event source mapping, its failure queue and, with `enable_alarms`, its alarms. What they are and
why: `stack_description.py` and `aggregator_settings.py`.

Its children are named after it: `<name>` (the function), `<name>-dlq`, `<name>-logs`, `<name>-role`,
`<name>-policy`, `<name>-stream`, `<name>-errors`, ... Under `ZaeLimiter("x")` it is `x-aggregator`, so its
children keep the names they had when they were the ZaeLimiter's own (`x-aggregator-dlq`, ...), and each
carries an alias to that parent: a stack deployed before the aggregator was a component updates in place,
with no resource replaced.
"""

from typing import Any, Optional

import pulumi
import pulumi_aws as aws

from zae_limiter.core.errors import ValidationError

from .args import ZaeLimiterArgs, check_args
from .build import Builder
from .stack_description import (
    AGGREGATOR,
    AGGREGATOR_PART,
    ALARM,
    DLQ_PART,
    FUNCTION_PART,
    LOGS_PART,
    MAPPING_PART,
    ROLE_PART,
    ROLE_POLICY_PART,
    TABLE_PART,
    describe,
)

AGGREGATOR_TYPE_TOKEN = "zae-limiter:index:Aggregator"
OUTPUT_KEYS = ("function_name", "function_arn", "log_group_name", "dlq_url", "role_arn")


class ZaeLimiterAggregator(pulumi.ComponentResource):
    """The usage aggregator of a zae-limiter table: the Lambda on its stream, with its role, log group,
    failure queue and (with enable_alarms) alarms."""

    function_name: pulumi.Output[str]
    function_arn: pulumi.Output[str]
    log_group_name: pulumi.Output[str]
    dlq_url: pulumi.Output[str]
    role_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: ZaeLimiterArgs,
        table: aws.dynamodb.Table,
        opts: Optional[pulumi.ResourceOptions] = None,
        *,
        code: Optional[pulumi.Archive] = None,
        moved_from: Optional[pulumi.Resource] = None,
    ) -> None:
        """`table`: the table whose stream it reads. `code`: the function's code (default: the archive
        built from `aggregator/`). `moved_from`: the component its children belonged to before they were
        this one's (ZaeLimiter passes itself), given to each as an alias."""
        args = check_args(args)
        if not args.enable_aggregator:
            raise ValidationError("enable_aggregator", "is false: there is no aggregator to create")
        super().__init__(AGGREGATOR_TYPE_TOKEN, name, None, opts)
        build = Builder(args, lambda suffix: name + suffix[len(AGGREGATOR_PART):], {TABLE_PART: table}, code)
        aliases = [pulumi.Alias(parent=moved_from)] if moved_from is not None else []
        owned = [resource for resource in describe(args) if resource.owner == AGGREGATOR]
        for resource in owned:
            build.create(resource, self, aliases)
        made = build.created
        self.dlq: aws.sqs.Queue = made[DLQ_PART]
        self.log_group: aws.cloudwatch.LogGroup = made[LOGS_PART]
        self.role: aws.iam.Role = made[ROLE_PART]
        self.role_policy: aws.iam.RolePolicy = made[ROLE_POLICY_PART]
        self.function: aws.lambda_.Function = made[FUNCTION_PART]
        self.event_source_mapping: aws.lambda_.EventSourceMapping = made[MAPPING_PART]
        self.alarms: list[aws.cloudwatch.MetricAlarm] = [made[r.part] for r in owned if r.kind is ALARM]
        self.resources: dict[str, pulumi.Resource] = {r.part: made[r.part] for r in owned}

        self.function_name = self.function.name
        self.function_arn = self.function.arn
        self.log_group_name = self.log_group.name
        self.dlq_url = self.dlq.url
        self.role_arn = self.role.arn
        self.register_outputs(self.outputs)

    @property
    def outputs(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in OUTPUT_KEYS}
