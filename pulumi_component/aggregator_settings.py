"""The usage aggregator's settings and its role's policy: plain data, no Pulumi import, which
`stack_description.py` makes resources of both the Pulumi component and the CloudFormation template.

Choices, and why:
- Starting position TRIM_HORIZON: the mapping reads the stream from its oldest record. Writes made between
  the table's creation and the mapping's (or while a replaced mapping is re-created) are still
  aggregated; LATEST would silently drop them. Reading a record twice is safe because the aggregator is
  idempotent (DESIGN section 12), losing one is not.
- Partial batch responses with bisection: a bad record is retried alone and then sent to the failure
  queue, instead of blocking its shard or taking good records with it.
- A retry limit and a maximum record age bound how long a failing record holds its shard. The age is
  generous (6 h, the stream keeps 24 h) because late usage is better than lost usage, and the
  iterator-age alarm pages long before it is reached.
- The failure queue gets the mapping's failure notices (shard and sequence numbers, not the records);
  they are kept 14 days, the longest SQS allows, so an operator can see what was skipped.
"""

from __future__ import annotations

import copy
from typing import Any

from zae_limiter import iam

from .deferred import Option, Text

STARTING_POSITION = "TRIM_HORIZON"
BATCH_SIZE = 100
BATCHING_WINDOW_S = 5  # a little latency on snapshots for far fewer invocations under steady traffic
MAX_RETRY_ATTEMPTS = 3
MAX_RECORD_AGE_S = 6 * 3600
DLQ_RETENTION_S = 14 * 24 * 3600

# Lambda, and nothing else, may assume the aggregator's role.
LAMBDA_TRUST_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def trust_policy() -> dict[str, Any]:
    return copy.deepcopy(LAMBDA_TRUST_POLICY)


def role_policy(table_arn: str, stream_arn: str, log_group_arn: str, dlq_arn: str) -> dict[str, Any]:
    """The aggregator role's only policy: the manifest's aggregator operations on this table and stream,
    writing to its own log group, and reporting failed batches to its own queue."""
    log_group = log_group_arn[:-2] if log_group_arn.endswith(":*") else log_group_arn
    document = iam.policy_document("aggregator", table_arn, stream_arn)
    document["Statement"] += [
        {
            "Sid": "ZaeLimiterLogs",
            "Effect": "Allow",
            # No logs:CreateLogGroup: the group is created, with its retention, beside the function.
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [f"{log_group}:*"],
        },
        {"Sid": "ZaeLimiterFailures", "Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": [dlq_arn]},
    ]
    return document


def environment() -> dict[str, Text]:
    """The function's environment: what the aggregator reads its windows and retention from."""
    return {
        "SNAPSHOT_WINDOWS": Text("{windows}", {"windows": Option("snapshot_windows")}),
        "SNAPSHOT_RETENTION_DAYS": Text("{days}", {"days": Option("snapshot_retention_days")}),
    }
