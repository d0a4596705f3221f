"""Physical names of the regional resources a person types or reads in a console (the function, its log
group, the alarms), and logical (Pulumi) names of the component's children.

Each physical name is a pattern around a name root: `<root>-aggregator`, `/aws/lambda/<root>-aggregator`,
`<root>-<alarm>`. The component's root is the table name, the CloudFormation template's the stack name
(why they differ: `stack_description.py`). An operator paged at night finds `rate_limits-aggregator-errors`
next to the `rate_limits` table. The log group's name must be known before the function exists
(`/aws/lambda/<function name>`), so the group is created first with its retention and the function never
creates an unmanaged one.

A table name may hold `.` (Lambda refuses it) and be 255 characters long (Lambda takes 64): `name` then
replaces and cuts, with a hash that keeps distinct roots distinct. A CloudFormation stack name of up to 53
characters needs neither, so the template writes the pattern itself around `${AWS::StackName}`
(`pattern`); tests/test_stack_description.py checks that the two agree on every such root.
"""

from __future__ import annotations

import hashlib
import re

FUNCTION_NAME_MAX = 64  # Lambda
ALARM_NAME_MAX = 255  # CloudWatch
_NOT_IN_FUNCTION_NAME = re.compile(r"[^A-Za-z0-9_-]")

FUNCTION = "{root}-aggregator"
LOG_GROUP = "/aws/lambda/{function}"
ALARM = "{root}-{key}"
RULES = ("function", "log_group", "alarm")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def bounded(name: str, limit: int, salt: str | None = None) -> str:
    """`name` cut to `limit` characters; a cut (or a `salt`) adds a short hash of the full name so that
    distinct names stay distinct."""
    if len(name) <= limit and salt is None:
        return name
    suffix = "-" + _digest(salt or name)
    return name[: limit - len(suffix)] + suffix


def function_name(root: str) -> str:
    """`<root>-aggregator`; characters Lambda refuses (a table name may hold `.`) become `-`, with a hash
    of the root so that `a.b` and `a-b` keep distinct functions."""
    safe = _NOT_IN_FUNCTION_NAME.sub("-", root)
    return bounded(FUNCTION.format(root=safe), FUNCTION_NAME_MAX, salt=root if safe != root else None)


def log_group_name(function: str) -> str:
    return LOG_GROUP.format(function=function)


def alarm_name(root: str, key: str) -> str:
    return bounded(ALARM.format(root=root, key=key), ALARM_NAME_MAX)


def name(rule: str, root: str, key: str = "") -> str:
    """The physical name `rule` gives for `root` (and an alarm's `key`)."""
    if rule == "function":
        return function_name(root)
    if rule == "log_group":
        return log_group_name(function_name(root))
    if rule == "alarm":
        return alarm_name(root, key)
    raise ValueError(f"no name rule {rule!r}; the rules are {', '.join(RULES)}")


def pattern(rule: str, root_text: str, key: str = "") -> str:
    """The name `rule` gives, with the root written as `root_text` (`${AWS::StackName}`): equal to
    `name(rule, root)` for every root that needs no replacement and no cut."""
    if rule == "function":
        return FUNCTION.format(root=root_text)
    if rule == "log_group":
        return LOG_GROUP.format(function=FUNCTION.format(root=root_text))
    if rule == "alarm":
        return ALARM.format(root=root_text, key=key)
    raise ValueError(f"no name rule {rule!r}; the rules are {', '.join(RULES)}")


def child(component: str, part: str) -> str:
    """The logical name of a child resource: unique within the stack as long as the component's is."""
    return f"{component}-{part}"
