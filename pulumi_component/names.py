"""Physical names of the component's regional resources, and logical (Pulumi) names of its children.

Regional names (function, log group, alarms) are derived from the table name rather than left to Pulumi's
random suffix: a table name is unique in its account and region, so names derived from it are too, and an
operator paged at night finds `rate_limits-aggregator-errors` next to the `rate_limits` table. The log
group's name must be known before the function exists (`/aws/lambda/<function name>`), so the group is
created first with its retention and the function never creates an unmanaged one.

IAM is global, so the role and the policies keep Pulumi's autonaming (a role prefix when asked): the same
table name in two regions must not collide there.
"""

from __future__ import annotations

import hashlib
import re

FUNCTION_NAME_MAX = 64  # Lambda
ALARM_NAME_MAX = 255  # CloudWatch
_NOT_IN_FUNCTION_NAME = re.compile(r"[^A-Za-z0-9_-]")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def bounded(name: str, limit: int, salt: str | None = None) -> str:
    """`name` cut to `limit` characters; a cut (or a `salt`) adds a short hash of the full name so that
    distinct names stay distinct."""
    if len(name) <= limit and salt is None:
        return name
    suffix = "-" + _digest(salt or name)
    return name[: limit - len(suffix)] + suffix


def function_name(table_name: str) -> str:
    """`<table>-aggregator`; characters Lambda refuses (a table name may hold `.`) become `-`, with a hash
    of the table name so that `a.b` and `a-b` keep distinct functions."""
    safe = _NOT_IN_FUNCTION_NAME.sub("-", table_name)
    base = f"{safe}-aggregator"
    return bounded(base, FUNCTION_NAME_MAX, salt=table_name if safe != table_name else None)


def log_group_name(function: str) -> str:
    return f"/aws/lambda/{function}"


def alarm_name(table_name: str, what: str) -> str:
    return bounded(f"{table_name}-{what}", ALARM_NAME_MAX)


def child(component: str, part: str) -> str:
    """The logical name of a child resource: unique within the stack as long as the component's is."""
    return f"{component}-{part}"
