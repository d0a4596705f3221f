"""`ZaeLimiterArgs`: the component's typed arguments.

They are `StackOptions` plus the table name. The defaults and every rule come from `StackOptions` (the
one definition the CLI, `create_stack` and the standalone program share): the defaults below are read
from it, and `__post_init__` validates by building one, so a bad value raises the same
`ValidationError` naming the field, whichever entry point it came through.

The annotations and the docstring under each field are also the component's schema for other Pulumi
languages: the component-provider host (`pulumi.provider.experimental`, see `provider_host.py`) infers
it from them at run time. Hence no `from __future__ import annotations` here (it would turn them into
strings the inference cannot read), `Optional[...]` on every field that has a default (optional in the
schema), and `pulumi.Input[...]` on what a program may compute: the table name, the SNS topic and the
permission boundary (ARNs of resources created beside it), and the tags. The other fields decide which
resources exist, so they are plain values.
"""

import inspect
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Optional

import pulumi

from zae_limiter.core.errors import ValidationError
from zae_limiter.stack_options import StackOptions, check_table_name

_DEFAULTS = StackOptions()
# Values that only pass the StackOptions checks, standing in for inputs that are Pulumi Outputs (an SNS
# topic or a boundary policy created in the same program, tags read from elsewhere): their shape is
# checked by AWS, and every other rule (for example "a topic needs enable_alarms") still runs.
_STAND_INS: dict[str, Any] = {
    "alarm_sns_topic_arn": "arn:aws:sns:us-east-1:000000000000:output",
    "permission_boundary": "arn:aws:iam::000000000000:policy/output",
    "tags": {},
}


def is_computed(value: Any) -> bool:
    """An input only known when the engine runs (an Output, or an awaitable)."""
    return isinstance(value, pulumi.Output) or inspect.isawaitable(value)


@dataclass(frozen=True)
class ZaeLimiterArgs:
    """Arguments of ZaeLimiter: the DynamoDB table name and the deployment's options. Every option has the
    default of the CLI's `deploy` (StackOptions); None means that default."""

    table_name: pulumi.Input[str]
    """DynamoDB table name: 3 to 255 of letters, digits and _.- (it also names the function, its log group and the alarms)."""
    snapshot_windows: Optional[str] = _DEFAULTS.snapshot_windows
    """Usage snapshot windows, comma-separated: hourly, daily, monthly (default hourly,daily)."""
    snapshot_retention_days: Optional[int] = _DEFAULTS.snapshot_retention_days
    """Days usage snapshots are kept (1-3650, default 90)."""
    enable_aggregator: Optional[bool] = _DEFAULTS.enable_aggregator
    """Create the usage aggregator Lambda on the table's stream (default true)."""
    pitr_recovery_days: Optional[int] = _DEFAULTS.pitr_recovery_days
    """Point-in-time recovery period in days: 0 (off, the default) or 1-35."""
    log_retention_days: Optional[int] = _DEFAULTS.log_retention_days
    """CloudWatch log retention of the aggregator, in days (a period CloudWatch accepts; default 14)."""
    lambda_memory_mb: Optional[int] = _DEFAULTS.lambda_memory_mb
    """Aggregator memory in MB (128-10240, default 256)."""
    lambda_timeout_s: Optional[int] = _DEFAULTS.lambda_timeout_s
    """Aggregator timeout in seconds (1-900, default 60)."""
    enable_alarms: Optional[bool] = _DEFAULTS.enable_alarms
    """Create CloudWatch alarms: table throttling, aggregator errors, duration, iterator age, failure queue (default false)."""
    alarm_sns_topic_arn: Optional[pulumi.Input[str]] = _DEFAULTS.alarm_sns_topic_arn
    """SNS topic ARN the alarms notify when they fire and clear (needs enable_alarms)."""
    permission_boundary: Optional[pulumi.Input[str]] = _DEFAULTS.permission_boundary
    """IAM policy ARN set as the permission boundary of the roles created."""
    role_name_prefix: Optional[str] = _DEFAULTS.role_name_prefix
    """Prefix of the names of the IAM roles created (1-32 of letters, digits and +=,.@_-)."""
    deletion_protection: Optional[bool] = _DEFAULTS.deletion_protection
    """Protect the table against deletion (default false)."""
    tags: Optional[pulumi.Input[Mapping[str, str]]] = field(default_factory=dict)
    """Tags of every resource created."""

    def __post_init__(self) -> None:
        if isinstance(self.table_name, pulumi.Output):
            # Checked when the engine resolves it: a bad computed name fails the update naming the field.
            object.__setattr__(self, "table_name", self.table_name.apply(check_table_name))
        elif not is_computed(self.table_name):
            check_table_name(self.table_name)
        given = {name: getattr(self, name) for name in option_names()}
        for name, value in given.items():
            if value is None and getattr(_DEFAULTS, name) is not None:
                given[name] = getattr(_DEFAULTS, name)
                object.__setattr__(self, name, given[name])
        checked = StackOptions(**{name: _checkable(name, value) for name, value in given.items()})
        # Keep what StackOptions normalised (windows without spaces, tags as a plain dict); keep Outputs.
        for name in option_names():
            if not _has_computed(given[name]):
                object.__setattr__(self, name, getattr(checked, name))

    @classmethod
    def from_options(cls, table_name: str, options: Optional[StackOptions] = None) -> "ZaeLimiterArgs":
        """The arguments for `table_name` configured by `options` (default: every default)."""
        if options is None:
            options = StackOptions()
        if not isinstance(options, StackOptions):
            raise ValidationError("options", f"must be a StackOptions, got {type(options).__name__}")
        return cls(table_name, **{name: getattr(options, name) for name in option_names()})


def _has_computed(value: Any) -> bool:
    return is_computed(value) or (isinstance(value, Mapping) and any(is_computed(v) for v in value.values()))


def _checkable(name: str, value: Any) -> Any:
    if is_computed(value):
        return _STAND_INS[name]
    if isinstance(value, Mapping) and _has_computed(value):  # tags with some values computed
        return {k: "output" if is_computed(v) else v for k, v in value.items()}
    return value


def _from_wire(name: str, value: Any) -> Any:
    """Numbers travel as floats between the engine and a provider; the host of pulumi 3.272 means to turn
    integer inputs back into ints, but hands the float on. A whole float for an integer option is that int."""
    default = getattr(_DEFAULTS, name, None)
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def option_names() -> tuple[str, ...]:
    """The StackOptions fields, in order: every argument but `table_name`."""
    return tuple(f.name for f in fields(StackOptions))


def check_args(args: Any) -> ZaeLimiterArgs:
    """The component's arguments from a ZaeLimiterArgs, or from a mapping of its field names (what the
    component-provider host passes a component constructed from another language)."""
    if isinstance(args, ZaeLimiterArgs):
        return args
    if isinstance(args, Mapping):
        unknown = sorted(set(args) - {f.name for f in fields(ZaeLimiterArgs)})
        if unknown:
            raise ValidationError("args", f"unknown argument(s) {', '.join(unknown)}")
        if "table_name" not in args:
            raise ValidationError("table_name", "required")
        return ZaeLimiterArgs(**{name: _from_wire(name, value) for name, value in args.items()})
    raise ValidationError(
        "args", f"must be a ZaeLimiterArgs (or ZaeLimiterArgs.from_options(table, options)), got {type(args).__name__}"
    )
