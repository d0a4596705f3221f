"""Options shared by several commands, each with its help text and environment variable."""

from __future__ import annotations

import re
from typing import Any, Callable

import click

from ..core.errors import ValidationError
from ..core.limits import Limit, parse_limits
from ..stack_defaults import OPTION_DEFAULTS, STACK_NAME_PREFIX
from ..stack_options import StackOptions, check_table_name
from ..core.validation import check_region

F = Callable[..., Any]

# The library's field names that differ from the name of the CLI parameter holding them: a ValidationError
# raised anywhere under a command is reported on the option or argument the user typed (cli/__init__.py).
PARAMETER_OF_FIELD = {
    "enable_aggregator": "no_aggregator",
    "lambda_memory_mb": "lambda_memory",
    "lambda_timeout_s": "lambda_timeout",
    "alarm_sns_topic_arn": "alarm_sns_topic",
    "metadata": "meta",
    "limits": "spec",
    "start": "since",
    "end": "until",
}
_FIELD_HEAD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parameter_of(ctx: click.Context, field: str) -> click.Parameter | None:
    """The parameter of `ctx`'s command a library field (`entity_id`, `limits`, `consume['rpm']`) came
    from, if any."""
    head = _FIELD_HEAD.match(field)
    if head is None:
        return None
    name = PARAMETER_OF_FIELD.get(head[0], head[0])
    return next((param for param in ctx.command.params if param.name == name), None)


def usage_error(ctx: click.Context, error: ValidationError) -> click.UsageError:
    """A ValidationError as the CLI reports it: on the option or argument it came from, by its CLI name."""
    param = parameter_of(ctx, error.field)
    if param is None:
        return click.UsageError(str(error), ctx)
    message = str(error)
    head = _FIELD_HEAD.match(error.field)[0]  # type: ignore[index]  # matched in parameter_of
    for prefix in (error.field + ": ", head + ": "):  # `entity_id: ...`; `limits: rpm.rate: ...` keeps `rpm.rate`
        if message.startswith(prefix):
            message = message[len(prefix):]
            break
    return click.BadParameter(message, ctx=ctx, param=param)


def checked(check: Callable[[str, Any], Any]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None or value == "" and param.envvar:  # unset, or an empty environment variable
            if param.required:
                raise click.MissingParameter(ctx=ctx, param=param)
            return None
        try:
            return check(param.name or "", value)
        except ValidationError as error:
            raise usage_error(ctx, error) from error

    return callback


def _default(required: bool, default: str | None) -> dict[str, Any]:
    # click tells a missing value from an explicit default of None: pass a default only when there is one.
    return {"required": required} if default is None else {"default": default, "show_default": True}


def region_option(
    required: bool = False, default: str | None = None, help: str = "AWS region.",
    envvar: tuple[str, ...] | None = ("AWS_REGION", "AWS_DEFAULT_REGION"),
) -> Callable[[F], F]:
    """`--region`, checked for the shape of a region name (validation.check_region) by every command."""
    return click.option(
        "--region", envvar=envvar, show_envvar=envvar is not None, callback=checked(check_region), help=help,
        **_default(required, default),
    )


def endpoint_option(help_text: str) -> Callable[[F], F]:
    return click.option("--endpoint-url", envvar="ZAE_LIMITER_ENDPOINT_URL", show_envvar=True, help=help_text)


def backend_option(f: F) -> F:
    return click.option(
        "--backend-url",
        envvar="PULUMI_BACKEND_URL",
        show_envvar=True,
        help="Pulumi backend for the stack's state (default: file://~/.zae-limiter/pulumi), as `pulumi login` takes it: "
        "file://path, s3://bucket, azblob://container, gs://bucket, postgres://..., or https://api.pulumi.com.",
    )(f)


def table_option(
    required: bool = True, default: str | None = None, help: str = "DynamoDB table name.",
    envvar: str | None = "ZAE_LIMITER_TABLE",
) -> Callable[[F], F]:
    """`--table-name`, checked against DynamoDB's rule for table names (stack_options.check_table_name)
    by every command that takes it."""
    return click.option(
        "--table-name", envvar=envvar, show_envvar=envvar is not None,
        callback=checked(lambda field, value: check_table_name(value, field)), help=help, **_default(required, default),
    )


def stack_name_option(f: F) -> F:
    return click.option("--stack-name", help=f"Pulumi stack name (default: {STACK_NAME_PREFIX}{{table}}).")(f)


def deployment_options(f: F) -> F:
    """The component's settings, with the deployment guide's names; defaults from stack_defaults. The flags
    turn a default off (--no-aggregator) or on (the others); tests/test_stack_defaults.py checks they still do."""
    d = OPTION_DEFAULTS
    decorators = [
        click.option("--no-aggregator", is_flag=True, help="Skip the usage aggregator Lambda."),
        click.option("--log-retention-days", type=int, default=d["log_retention_days"], show_default=True, help="CloudWatch log retention of the aggregator."),
        click.option("--pitr-recovery-days", type=int, default=d["pitr_recovery_days"], show_default=True, help="Point-in-time recovery period in days (0 = disabled, 1-35)."),
        click.option("--enable-alarms", is_flag=True, help="Create CloudWatch alarms (errors, duration, iterator age, throttles, DLQ)."),
        click.option("--alarm-sns-topic", help="SNS topic ARN the alarms notify (needs --enable-alarms)."),
        click.option("--snapshot-windows", default=d["snapshot_windows"], show_default=True, help="Usage snapshot windows: hourly, daily, monthly."),
        click.option("--snapshot-retention-days", type=int, default=d["snapshot_retention_days"], show_default=True, help="Days usage snapshots are kept."),
        click.option("--lambda-memory", type=int, default=d["lambda_memory_mb"], show_default=True, help="Aggregator memory in MB."),
        click.option("--lambda-timeout", type=int, default=d["lambda_timeout_s"], show_default=True, help="Aggregator timeout in seconds."),
        click.option("--permission-boundary", help="IAM policy ARN set as permission boundary on created roles."),
        click.option("--role-name-prefix", help="Prefix of the names of created IAM roles."),
        click.option("--deletion-protection", is_flag=True, help="Protect the table against deletion."),
        click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE",
                     help="Tag every resource (repeatable): letters, numbers, spaces and _.:/=+-@, as AWS allows."),
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def stack_options_from(params: dict[str, Any]) -> StackOptions:
    """The deployment options as StackOptions; a bad value is a ValidationError, which the command
    reports on its option (PARAMETER_OF_FIELD)."""
    tags = {}
    for text in params["tags"]:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {text!r}", param_hint="--tag")
        tags[key] = value
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


def limits_argument(value: str | None, param: str = "limits") -> list[Limit] | None:
    """Limits in the text syntax. A bad text is a ValidationError the command reports on the parameter it
    came from: `param`, a field name or an option (`--schedule`); by default `limits`, which is the
    LIMITS argument or --limits (PARAMETER_OF_FIELD)."""
    return None if value is None else parse_limits(value, param.lstrip("-").replace("-", "_"))
