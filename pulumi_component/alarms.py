"""CloudWatch alarms (with `enable_alarms`): the signals that usage accounting or rate limiting is degraded.

Every alarm fires on any occurrence in a 5-minute period (a rate limiter that throttles, or an aggregator
that errors, is worth a look at once), treats missing data as fine (idle periods publish nothing), and
notifies the SNS topic when one is given, both when it fires and when it clears (so the page resolves).
The aggregator's alarms exist only with the aggregator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from . import names
from .args import ZaeLimiterArgs

PERIOD_S = 300
DURATION_SHARE = 0.8  # of the function's timeout: a batch this slow is close to being killed
ITERATOR_AGE_MS = 5 * 60 * 1000  # the aggregator is five minutes behind the table's writes


@dataclass(frozen=True)
class AlarmSpec:
    key: str  # short name: logical name suffix and physical name suffix
    description: str
    namespace: str
    metric_name: str
    statistic: str
    threshold: float
    dimensions: dict[str, Any] = field(default_factory=dict)


def table_alarm_specs(table_name: str) -> list[AlarmSpec]:
    return [
        AlarmSpec(
            f"{kind}-throttles",
            f"DynamoDB throttled {kind} requests on table {table_name}: rate-limit checks are slowed or failing",
            "AWS/DynamoDB",
            f"{kind.capitalize()}ThrottleEvents",
            "Sum",
            0,
            {"TableName": table_name},
        )
        for kind in ("read", "write")
    ]


def aggregator_alarm_specs(
    table_name: str, function_name: str, timeout_s: int, queue_name: pulumi.Input[str]
) -> list[AlarmSpec]:
    function = {"FunctionName": function_name}
    return [
        AlarmSpec(
            "aggregator-errors",
            f"The usage aggregator of {table_name} failed invocations: snapshots are late or skipped",
            "AWS/Lambda", "Errors", "Sum", 0, function,
        ),
        AlarmSpec(
            "aggregator-duration",
            f"The usage aggregator of {table_name} ran longer than {DURATION_SHARE:.0%} of its {timeout_s} s timeout",
            "AWS/Lambda", "Duration", "Maximum", DURATION_SHARE * timeout_s * 1000, function,
        ),
        AlarmSpec(
            "aggregator-iterator-age",
            f"The usage aggregator of {table_name} is more than {ITERATOR_AGE_MS // 60000} minutes behind the stream",
            "AWS/Lambda", "IteratorAge", "Maximum", ITERATOR_AGE_MS, function,
        ),
        AlarmSpec(
            "aggregator-dlq",
            f"Stream records of {table_name} the aggregator gave up on are waiting in its failure queue",
            "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 0, {"QueueName": queue_name},
        ),
    ]


def create_alarms(
    name: str, args: ZaeLimiterArgs, specs: list[AlarmSpec], parent: pulumi.Resource
) -> list[aws.cloudwatch.MetricAlarm]:
    actions = [args.alarm_sns_topic_arn] if args.alarm_sns_topic_arn is not None else []
    return [
        aws.cloudwatch.MetricAlarm(
            names.child(name, spec.key),
            name=names.alarm_name(args.table_name, spec.key),
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
            tags=dict(args.tags) or None,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        for spec in specs
    ]
