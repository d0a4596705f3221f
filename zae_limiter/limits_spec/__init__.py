"""Limits as code: a YAML file declares stored limits, a pure plan turns it and the table's state into
ordered writes, and a driver applies them (`zae-limiter limits plan/apply FILE`, and the Pulumi resource
`pulumi_component.ZaeLimits`, on the same plan).

The file (JSON Schema: `schema.json` in this package; limit text as `zae_limiter.core.limits.parse_limits`
reads it):

    version: 1                        # optional
    system: "rpm=1000/min"            # system defaults
    resources:                        # resource defaults
      gpt-4: "rpm=100/min,tpm=10000/min:50000"
    entities:
      org-1:
        name: "Org One"               # optional; the file manages each entity it names whole
        metadata: {tier: gold}
        limits: {gpt-4: "rpm=500/min"}
      key-1:
        parent: org-1                 # in this file or already in the table
        cascade: true
        limits:
          _default_: "rpm=50/min"
          gpt-4: {limits: "rpm=20/min"}   # the long form of a limit value
          claude: {disabled: true}        # refused with ResourceDisabled

The quota model's keys (README "Limits as code"): limit text takes quotas (`budget=1000000 per month`)
and soft limits (`soft rpm=10/s`); the long form of a limit value takes `schedule: [{cron, limits}]`
(checked as `set_limits(..., schedule=...)` checks it) and `disabled: true|false` (an entity's resource,
or a resource for every entity; `{disabled: true}` alone sets the flag without limits); an entity takes
`disabled: true|false` (all its resources). A flag the file does not name is left alone unless pruning.

Modules: `document` (file -> LimitsSpec, every check), `model` (the records), `plan` (pure), `table`
(read flows and the record update), `apply` (the driver over SyncRateLimiter, loaded on first use).
"""

from typing import Any

from .document import MISSING_EXTRA, SpecError, from_document, json_schema, load_file, load_text, to_document
from .model import Change, EntityRecord, EntitySpec, LimitsSpec, TableState
from .plan import Plan, plan

__all__ = [
    "MISSING_EXTRA", "ApplyFailed", "Change", "EntityRecord", "EntitySpec", "LimitsSpec", "Plan", "SpecError",
    "TableState", "apply_plan", "from_document", "json_schema", "load_file", "load_text", "plan", "plan_against",
    "read_state", "to_document",
]

_DRIVER = {"ApplyFailed", "apply_plan", "plan_against", "read_state"}


def __getattr__(name: str) -> Any:
    if name in _DRIVER:  # the driver needs boto3; the format and the plan do not
        from . import apply

        return getattr(apply, name)
    raise AttributeError(f"module 'zae_limiter.limits_spec' has no attribute {name!r}")
