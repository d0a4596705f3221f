"""The alarms (with `enable_alarms`): the signals that usage accounting or rate limiting is degraded. Plain
data, no Pulumi import; `stack_description.py` makes them resources of both the component and the template.

Every alarm fires on any occurrence in a 5-minute period (a rate limiter that throttles, or an aggregator
that errors, is worth a look at once), treats missing data as fine (idle periods publish nothing), and
notifies the SNS topic when one is given, both when it fires and when it clears (so the page resolves).
The aggregator's alarms exist only with the aggregator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .deferred import Attribute, Name, Option, Text

PERIOD_S = 300
EVALUATION_PERIODS = 1
COMPARISON = "GreaterThanThreshold"
MISSING_DATA = "notBreaching"
DURATION_SHARE = 0.8  # of the function's timeout: a batch this slow is close to being killed
ITERATOR_AGE_MS = 5 * 60 * 1000  # the aggregator is five minutes behind the table's writes

_TABLE = {"table": Option("table_name")}
# Dimensions as texts: the template has always written them as Fn::Sub strings, and an existing stack's
# alarms stay exactly as they are.
_TABLE_DIMENSION = {"TableName": Text("{table}", _TABLE)}


@dataclass(frozen=True)
class AlarmSpec:
    key: str  # short name: the suffix of its logical and physical names
    description: Text
    namespace: str
    metric_name: str
    statistic: str
    threshold: float
    dimensions: dict[str, Any] = field(default_factory=dict)


def table_alarm_specs() -> list[AlarmSpec]:
    return [
        AlarmSpec(
            f"{kind}-throttles",
            Text(f"DynamoDB throttled {kind} requests on table {{table}}: rate-limit checks are slowed or failing", _TABLE),
            "AWS/DynamoDB",
            f"{kind.capitalize()}ThrottleEvents",
            "Sum",
            0,
            _TABLE_DIMENSION,
        )
        for kind in ("read", "write")
    ]


def aggregator_alarm_specs(timeout_s: int, queue_part: str) -> list[AlarmSpec]:
    """The aggregator's alarms, for its timeout and its failure queue (the description's part)."""
    function = {"FunctionName": Name("function")}
    return [
        AlarmSpec(
            "aggregator-errors",
            Text("The usage aggregator of {table} failed invocations: snapshots are late or skipped", _TABLE),
            "AWS/Lambda", "Errors", "Sum", 0, function,
        ),
        AlarmSpec(
            "aggregator-duration",
            Text(f"The usage aggregator of {{table}} ran longer than {DURATION_SHARE:.0%} of its {timeout_s} s timeout", _TABLE),
            "AWS/Lambda", "Duration", "Maximum", DURATION_SHARE * timeout_s * 1000, function,
        ),
        AlarmSpec(
            "aggregator-iterator-age",
            Text(f"The usage aggregator of {{table}} is more than {ITERATOR_AGE_MS // 60000} minutes behind the stream", _TABLE),
            "AWS/Lambda", "IteratorAge", "Maximum", ITERATOR_AGE_MS, function,
        ),
        AlarmSpec(
            "aggregator-dlq",
            Text("Stream records of {table} the aggregator gave up on are waiting in its failure queue", _TABLE),
            "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 0, {"QueueName": Text("{queue}", {"queue": Attribute(queue_part, "name")})},
        ),
    ]
