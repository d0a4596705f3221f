"""CloudWatch alarms (with `enable_alarms`): the signals that usage accounting or rate limiting is degraded.

Every alarm fires on any occurrence in a 5-minute period (a rate limiter that throttles, or an aggregator
that errors, is worth a look at once), treats missing data as fine (idle periods publish nothing), and
notifies the SNS topic when one is given, both when it fires and when it clears (so the page resolves).
The aggregator's alarms exist only with the aggregator.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from . import names
from .alarm_specs import PERIOD_S, AlarmSpec, aggregator_alarm_specs, table_alarm_specs
from .args import ZaeLimiterArgs
from .inputs import derived, tags_of

__all__ = ["AlarmSpec", "aggregator_alarm_specs", "create_alarms", "table_alarm_specs"]


def create_alarms(
    name: str, args: ZaeLimiterArgs, specs: list[AlarmSpec], parent: pulumi.Resource
) -> list[aws.cloudwatch.MetricAlarm]:
    actions = [args.alarm_sns_topic_arn] if args.alarm_sns_topic_arn is not None else []
    return [
        aws.cloudwatch.MetricAlarm(
            names.child(name, spec.key),
            name=derived(names.alarm_name, args.table_name, spec.key),
            alarm_description=spec.description,
            namespace=spec.namespace,
            metric_name=spec.metric_name,
            statistic=spec.statistic,
            dimensions=spec.dimensions,
            period=PERIOD_S,
            evaluation_periods=1,
            comparison_operator="GreaterThanThreshold",
            threshold=spec.threshold,
            treat_missing_data="notBreaching",
            alarm_actions=actions,
            ok_actions=actions,
            tags=tags_of(args),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        for spec in specs
    ]
