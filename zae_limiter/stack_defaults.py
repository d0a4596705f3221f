"""The stack's defaults: the one list that `StackOptions` (and through it `ZaeLimiterArgs` and the
standalone program's config), the CLI's `deploy`, `preview`, `program` and `cfn-template` options, the
Automation API layer and the CloudFormation template's parameters read. None of them spells a default of
its own; tests/test_stack_defaults.py reads their sources and fails when one does, and checks the
documentation's tables against this list.

Plain data with no imports: the runtime package, the CLI without the deploy extra and the template read it.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping

# Every StackOptions field, in its order, with its default.
OPTION_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "snapshot_windows": "hourly,daily",
        "snapshot_retention_days": 90,
        "enable_aggregator": True,
        "pitr_recovery_days": 0,  # off
        "log_retention_days": 14,
        "lambda_memory_mb": 256,
        "lambda_timeout_s": 60,
        "enable_alarms": False,
        "alarm_sns_topic_arn": None,
        "permission_boundary": None,
        "role_name_prefix": None,
        "deletion_protection": False,
        "tags": MappingProxyType({}),
    }
)

# The Pulumi project (and so the config namespace: `zae-limiter:tableName`) of Pulumi.yaml, the Automation
# API's workspaces and the projects `zae-limiter program` writes.
PROJECT = "zae-limiter"
# The component's name in the program Pulumi.yaml, the CLI and `create_stack` run (its children are
# `zae-limiter-table`, `zae-limiter-aggregator`, ...).
COMPONENT_NAME = "zae-limiter"
# The stack of the CLI and `create_stack` when none is named: `zae-limiter-{table}`.
STACK_NAME_PREFIX = "zae-limiter-"
# The table `cfn-template` (its TableName parameter) and `program` write when none is given.
TABLE_NAME = "rate_limits"
# The region `program` writes into the stack's configuration, and `local` gives its clients, when none is given.
REGION = "us-east-1"
# The template's PITRRecoveryDays when point-in-time recovery is off (EnablePITR=false): the period it gets
# if EnablePITR is later set to true without one, DynamoDB's own default.
PITR_DAYS_WHEN_ENABLED = 35
# The aggregator's code archive: `lambda-export`'s --output and the template's CodeS3Key.
CODE_ARCHIVE = "lambda.zip"


def default_stack_name(table_name: str) -> str:
    return f"{STACK_NAME_PREFIX}{table_name}"
