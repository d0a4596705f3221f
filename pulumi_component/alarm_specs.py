"""The alarms' definitions: plain data, no Pulumi import, shared by the Pulumi component (`alarms.py`)
and the CloudFormation template (`cloudformation.py`). Why these signals and thresholds: `alarms.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    table_name: str, function_name: str, timeout_s: int, queue_name: Any
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
