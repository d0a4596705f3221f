"""Options shared by several commands, each with its help text and environment variable."""

from __future__ import annotations

from typing import Any, Callable

import click

from ..errors import ValidationError
from ..limits import Limit, parse_limits
from ..stack_options import StackOptions

F = Callable[..., Any]


def region_option(required: bool = False) -> Callable[[F], F]:
    return click.option(
        "--region",
        envvar=["AWS_REGION", "AWS_DEFAULT_REGION"],
        required=required,
        show_envvar=True,
        help="AWS region.",
    )


def endpoint_option(help_text: str) -> Callable[[F], F]:
    return click.option("--endpoint-url", envvar="ZAE_LIMITER_ENDPOINT_URL", show_envvar=True, help=help_text)


def backend_option(f: F) -> F:
    return click.option(
        "--backend-url",
        envvar="PULUMI_BACKEND_URL",
        show_envvar=True,
        help="Pulumi backend for the stack's state (default: file://~/.zae-limiter/pulumi). Any Pulumi backend works: "
        "s3://bucket, https://api.pulumi.com, file://path.",
    )(f)


def table_option(required: bool = True) -> Callable[[F], F]:
    return click.option(
        "--table-name",
        envvar="ZAE_LIMITER_TABLE",
        show_envvar=True,
        required=required,
        help="DynamoDB table name.",
    )


def stack_name_option(f: F) -> F:
    return click.option("--stack-name", help="Pulumi stack name (default: zae-limiter-{table}).")(f)


def deployment_options(f: F) -> F:
    """The component's settings, with the deployment guide's names."""
    decorators = [
        click.option("--no-aggregator", is_flag=True, help="Skip the usage aggregator Lambda."),
        click.option("--log-retention-days", type=int, default=14, show_default=True, help="CloudWatch log retention of the aggregator."),
        click.option("--pitr-recovery-days", type=int, default=0, show_default=True, help="Point-in-time recovery period in days (0 = disabled, 1-35)."),
        click.option("--enable-alarms", is_flag=True, help="Create CloudWatch alarms (errors, duration, iterator age, throttles, DLQ)."),
        click.option("--alarm-sns-topic", help="SNS topic ARN the alarms notify (needs --enable-alarms)."),
        click.option("--snapshot-windows", default="hourly,daily", show_default=True, help="Usage snapshot windows: hourly, daily, monthly."),
        click.option("--snapshot-retention-days", type=int, default=90, show_default=True, help="Days usage snapshots are kept."),
        click.option("--lambda-memory", type=int, default=256, show_default=True, help="Aggregator memory in MB."),
        click.option("--lambda-timeout", type=int, default=60, show_default=True, help="Aggregator timeout in seconds."),
        click.option("--permission-boundary", help="IAM policy ARN set as permission boundary on created roles."),
        click.option("--role-name-prefix", help="Prefix of the names of created IAM roles."),
        click.option("--deletion-protection", is_flag=True, help="Protect the table against deletion."),
        click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag every resource (repeatable)."),
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


OPTION_OF_FIELD = {
    "enable_aggregator": "--no-aggregator",
    "lambda_memory_mb": "--lambda-memory",
    "lambda_timeout_s": "--lambda-timeout",
    "alarm_sns_topic_arn": "--alarm-sns-topic",
    "tags": "--tag",
}


def stack_options_from(params: dict[str, Any]) -> StackOptions:
    tags = {}
    for text in params["tags"]:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {text!r}", param_hint="--tag")
        tags[key] = value
    try:
        return StackOptions(
            snapshot_windows=params["snapshot_windows"],
            snapshot_retention_days=params["snapshot_retention_days"],
            enable_aggregator=not params["no_aggregator"],
            pitr_recovery_days=params["pitr_recovery_days"],
            log_retention_days=params["log_retention_days"],
            lambda_memory_mb=params["lambda_memory"],
            lambda_timeout_s=params["lambda_timeout"],
            enable_alarms=params["enable_alarms"],
            alarm_sns_topic_arn=params["alarm_sns_topic"],
            permission_boundary=params["permission_boundary"],
            role_name_prefix=params["role_name_prefix"],
            deletion_protection=params["deletion_protection"],
            tags=tags,
        )
    except ValidationError as error:
        option = OPTION_OF_FIELD.get(error.field, "--" + error.field.replace("_", "-"))
        raise click.BadParameter(str(error), param_hint=option) from error


def limits_argument(value: str | None, param_hint: str = "LIMITS") -> list[Limit] | None:
    if value is None:
        return None
    try:
        return parse_limits(value)
    except ValidationError as error:
        raise click.BadParameter(str(error), param_hint=param_hint) from error
