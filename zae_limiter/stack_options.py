"""`StackOptions`: how the Pulumi stack is configured. Plain data, no Pulumi import, so the runtime
package can carry it; the component's `ZaeLimiterArgs` is built from it. Its defaults are
`stack_defaults.OPTION_DEFAULTS`."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

from .core.errors import ValidationError
from .core.schema import WINDOWS
from .core.validation import REGION_PATTERN
from .stack_defaults import OPTION_DEFAULTS as _D

# DynamoDB's rule for table names.
TABLE_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_ROLE_PREFIX = re.compile(r"[A-Za-z0-9+=,.@_-]{1,32}")
# ARNs: arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE (partitions aws, aws-cn, aws-us-gov, aws-iso-b, ...).
_PARTITION = re.compile(r"aws(?:-[a-z]+)*")
_ACCOUNT = re.compile(r"[0-9]{12}")
# SNS topic names: 1 to 256 letters, digits, '-' and '_'; a FIFO topic's ends with ".fifo" (within the 256).
_SNS_TOPIC = re.compile(r"(?=.{1,256}$)[A-Za-z0-9_-]+(?:\.fifo)?")
_POLICY_PATH = re.compile(r"policy/[A-Za-z0-9+=,.@_/-]+")
# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)


def check_table_name(value: Any, field: str = "table_name") -> str:
    """DynamoDB's rule for table names; the CLI's --table-name, StackManager and the template share it."""
    if not isinstance(value, str) or not TABLE_NAME_PATTERN.fullmatch(value):
        raise ValidationError(field, f"3 to 255 of letters, digits and _.- (DynamoDB's rule), got {value!r}")
    return value


# AWS's rule for tags, as the resource schemas of IAM and SQS state it (`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`):
# letters, separators (spaces), numbers and _ . : / = + - @. Keys 1 to 128 characters, values up to 256,
# and no key starting with `aws:`, which AWS reserves.
TAG_SPECIALS = "_.:/=+-@"


def _tag_text_problem(text: str) -> str | None:
    bad = sorted({ch for ch in text if unicodedata.category(ch)[0] not in "LZN" and ch not in TAG_SPECIALS})
    if bad:
        return f"holds {', '.join(repr(ch) for ch in bad)}: tags may hold letters, numbers, spaces and {' '.join(TAG_SPECIALS)} (AWS's rule)"
    return None


def check_tags(tags: Any, field: str = "tags") -> Mapping[str, str]:
    if not isinstance(tags, Mapping):
        raise ValidationError(field, f"must be a mapping of tag keys to values, got {type(tags).__name__}")
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValidationError(field, f"keys and values must be strings, got {key!r}: {value!r}")
        if not 0 < len(key) <= 128 or len(value) > 256:
            raise ValidationError(field, f"a key is 1 to 128 characters and a value up to 256, got {key!r}: {value!r:.60}")
        if key.lower().startswith("aws:"):
            raise ValidationError(field, f"key {key!r}: keys starting with aws: are reserved by AWS")
        for what, text in (("key", key), ("value", value)):
            problem = _tag_text_problem(text)
            if problem:
                raise ValidationError(field, f"{what} {text!r} {problem}")
    return tags


def arn_problem(value: Any, service: str, region: bool, resource: re.Pattern[str], resource_rule: str) -> str | None:
    """Why `value` is not an ARN of `service` (None when it is one): the part that is wrong, and why."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    shape = f"arn:aws:{service}:{'REGION' if region else ''}:ACCOUNT:{resource_rule.split(':')[0]}"
    parts = value.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return f"must be an ARN of the form {shape}, got {value!r}"
    _, partition, named_service, region_name, account, rest = parts
    if not _PARTITION.fullmatch(partition):
        return f"{value!r} has partition {partition!r}: expected aws, aws-cn, aws-us-gov or another aws-* partition"
    if named_service != service:
        return f"{value!r} is an ARN of {named_service or 'no service'!r}, not {service!r} ({shape})"
    if region and not REGION_PATTERN.fullmatch(region_name):
        return f"{value!r} has region {region_name!r}: expected a region name such as us-east-1"
    if not region and region_name:
        return f"{value!r} has region {region_name!r}: {service} ARNs name no region ({shape})"
    if not _ACCOUNT.fullmatch(account) and not (service == "iam" and account == "aws"):  # AWS managed policies
        return f"{value!r} has account id {account!r} ({len(account)} characters): an AWS account id is 12 digits"
    if not resource.fullmatch(rest):
        return f"{value!r} ends in {rest!r}: {resource_rule}"
    return None


@dataclass(frozen=True)
class StackOptions:
    """Settings of the infrastructure stack. Every field's default comes from `stack_defaults.OPTION_DEFAULTS`
    (the one list of them)."""

    snapshot_windows: str = _D["snapshot_windows"]
    snapshot_retention_days: int = _D["snapshot_retention_days"]
    enable_aggregator: bool = _D["enable_aggregator"]
    pitr_recovery_days: int = _D["pitr_recovery_days"]
    log_retention_days: int = _D["log_retention_days"]
    lambda_memory_mb: int = _D["lambda_memory_mb"]
    lambda_timeout_s: int = _D["lambda_timeout_s"]
    enable_alarms: bool = _D["enable_alarms"]
    alarm_sns_topic_arn: str | None = _D["alarm_sns_topic_arn"]
    permission_boundary: str | None = _D["permission_boundary"]
    role_name_prefix: str | None = _D["role_name_prefix"]
    deletion_protection: bool = _D["deletion_protection"]
    tags: Mapping[str, str] = field(default_factory=lambda: dict(_D["tags"]))

    def __post_init__(self) -> None:
        windows = [w.strip() for w in str(self.snapshot_windows).split(",") if w.strip()]
        if not windows or any(w not in WINDOWS for w in windows) or len(set(windows)) != len(windows):
            raise ValidationError("snapshot_windows", f"a comma-separated subset of {', '.join(WINDOWS)}, got {self.snapshot_windows!r}")
        object.__setattr__(self, "snapshot_windows", ",".join(windows))
        _int(self, "snapshot_retention_days", 1, 3650)
        _int(self, "pitr_recovery_days", 0, 35)
        if self.pitr_recovery_days and self.pitr_recovery_days < 1:
            raise ValidationError("pitr_recovery_days", "0 (off) or 1 to 35")
        _int(self, "log_retention_days", 1, 3653)
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise ValidationError(
                "log_retention_days", f"CloudWatch Logs accepts one of {LOG_RETENTION_DAYS}, got {self.log_retention_days}"
            )
        _int(self, "lambda_memory_mb", 128, 10240)
        _int(self, "lambda_timeout_s", 1, 900)
        for name in ("enable_aggregator", "enable_alarms", "deletion_protection"):
            if not isinstance(getattr(self, name), bool):
                raise ValidationError(name, f"must be True or False, got {getattr(self, name)!r}")
        if self.alarm_sns_topic_arn is not None:
            problem = arn_problem(self.alarm_sns_topic_arn, "sns", True, _SNS_TOPIC,
                                  "TOPIC: a topic name is 1 to 256 letters, digits, '-' or '_' (FIFO: ending in .fifo)")
            if problem:
                raise ValidationError("alarm_sns_topic_arn", f"not an SNS topic ARN: {problem}")
        if self.alarm_sns_topic_arn and not self.enable_alarms:
            raise ValidationError("alarm_sns_topic_arn", "is only used with enable_alarms=True")
        if self.permission_boundary is not None:
            problem = arn_problem(self.permission_boundary, "iam", False, _POLICY_PATH,
                                  "policy/NAME: a policy ARN ends in policy/ then its path and name")
            if problem:
                raise ValidationError("permission_boundary", f"not an IAM policy ARN: {problem}")
        if self.role_name_prefix is not None and not _ROLE_PREFIX.fullmatch(self.role_name_prefix):
            raise ValidationError("role_name_prefix", "1 to 32 of letters, digits and +=,.@_-")
        check_tags(self.tags)
        object.__setattr__(self, "tags", dict(self.tags))

    @property
    def windows(self) -> tuple[str, ...]:
        return tuple(self.snapshot_windows.split(","))

    # The seed's stack_parameters used these names; they stay accepted.
    ALIASES = {"retention_days": "snapshot_retention_days", "pitr_days": "pitr_recovery_days"}

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any] | None, base: "StackOptions | None" = None) -> "StackOptions":
        """Options from string parameters such as `{"snapshot_windows": "hourly,daily", "retention_days": "90"}`."""
        base = base or cls()
        if not parameters:
            return base
        if not isinstance(parameters, Mapping):
            raise ValidationError("stack_parameters", "must be a mapping of option name to value")
        known = {f.name: f for f in fields(cls)}
        changes: dict[str, Any] = {}
        for raw_name, value in parameters.items():
            name = cls.ALIASES.get(raw_name, raw_name)
            if name not in known:
                raise ValidationError(f"stack_parameters[{raw_name!r}]", f"unknown option; known: {sorted(known)}")
            changes[name] = _coerce(name, getattr(base, name), value)
        return replace(base, **changes)

    def as_config(self) -> dict[str, str]:
        """Pulumi config values (camelCase keys) for the standalone program and the Automation API."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, Mapping):
                text = json.dumps(dict(value), sort_keys=True)
            else:
                text = str(value)
            out[config_key(f.name)] = text
        return out

    @classmethod
    def from_config(cls, get: Any) -> "StackOptions":
        """Options from a config reader `get(camelKey) -> str | None` (for example `pulumi.Config().get`)."""
        params = {}
        for f in fields(cls):
            value = get(config_key(f.name))
            if value is not None:
                params[f.name] = value
        return cls.from_parameters(params)


def config_key(name: str) -> str:
    """The Pulumi config key of an option: snapshot_windows -> snapshotWindows."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _int(options: StackOptions, name: str, low: int, high: int) -> None:
    value = getattr(options, name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(name, f"must be a whole number from {low} to {high}, got {value!r}")


def _coerce(name: str, current: Any, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if isinstance(current, bool):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValidationError(name, f"must be true or false, got {value!r}")
    if isinstance(current, int):
        try:
            return int(value.strip())
        except ValueError:
            raise ValidationError(name, f"must be a whole number, got {value!r}") from None
    if isinstance(current, Mapping):
        try:
            return json.loads(value)
        except ValueError:
            raise ValidationError(name, f'must be a JSON object such as {{"team": "ml"}}, got {value!r}') from None
    return value
