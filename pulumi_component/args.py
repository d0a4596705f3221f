"""`ZaeLimiterArgs`: the component's typed arguments.

They are `StackOptions` plus the table name. The defaults and every rule come from `StackOptions` (the
one definition the CLI, `create_stack` and the standalone program share): the defaults below are read
from it, and `__post_init__` validates by building one, so a bad value raises the same
`ValidationError` naming the field, whichever entry point it came through.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Optional

import pulumi

from zae_limiter.errors import ValidationError
from zae_limiter.stack_options import StackOptions, check_table_name

_DEFAULTS = StackOptions()
# Values that only pass the StackOptions checks, standing in for ARNs that are Pulumi Outputs (an SNS
# topic or a boundary policy created in the same program): their shape is checked by AWS, and every other
# rule (for example "a topic needs enable_alarms") still runs.
_STAND_INS = {
    "alarm_sns_topic_arn": "arn:aws:sns:us-east-1:000000000000:output",
    "permission_boundary": "arn:aws:iam::000000000000:policy/output",
}


@dataclass(frozen=True)
class ZaeLimiterArgs:
    """Arguments of `ZaeLimiter`. `alarm_sns_topic_arn` and `permission_boundary` also take Outputs."""

    table_name: str
    snapshot_windows: str = _DEFAULTS.snapshot_windows
    snapshot_retention_days: int = _DEFAULTS.snapshot_retention_days
    enable_aggregator: bool = _DEFAULTS.enable_aggregator
    pitr_recovery_days: int = _DEFAULTS.pitr_recovery_days
    log_retention_days: int = _DEFAULTS.log_retention_days
    lambda_memory_mb: int = _DEFAULTS.lambda_memory_mb
    lambda_timeout_s: int = _DEFAULTS.lambda_timeout_s
    enable_alarms: bool = _DEFAULTS.enable_alarms
    alarm_sns_topic_arn: Optional[pulumi.Input[str]] = _DEFAULTS.alarm_sns_topic_arn
    permission_boundary: Optional[pulumi.Input[str]] = _DEFAULTS.permission_boundary
    role_name_prefix: Optional[str] = _DEFAULTS.role_name_prefix
    deletion_protection: bool = _DEFAULTS.deletion_protection
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_table_name(self.table_name)
        given = {name: getattr(self, name) for name in option_names()}
        checked = StackOptions(
            **{name: _STAND_INS[name] if isinstance(value, pulumi.Output) else value for name, value in given.items()}
        )
        # Keep what StackOptions normalised (windows without spaces, tags as a plain dict); keep Outputs.
        for name in option_names():
            if not isinstance(given[name], pulumi.Output):
                object.__setattr__(self, name, getattr(checked, name))

    @classmethod
    def from_options(cls, table_name: str, options: StackOptions | None = None) -> "ZaeLimiterArgs":
        """The arguments for `table_name` configured by `options` (default: every default)."""
        if options is None:
            options = StackOptions()
        if not isinstance(options, StackOptions):
            raise ValidationError("options", f"must be a StackOptions, got {type(options).__name__}")
        return cls(table_name, **{name: getattr(options, name) for name in option_names()})


def option_names() -> tuple[str, ...]:
    """The StackOptions fields, in order: every argument but `table_name`."""
    return tuple(f.name for f in fields(StackOptions))


def check_args(args: Any) -> ZaeLimiterArgs:
    if not isinstance(args, ZaeLimiterArgs):
        raise ValidationError(
            "args", f"must be a ZaeLimiterArgs (or ZaeLimiterArgs.from_options(table, options)), got {type(args).__name__}"
        )
    return args
