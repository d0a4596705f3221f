"""Stored limits at the three levels: entity (per resource or `_default_`), resource, system. Flows."""

from __future__ import annotations

from typing import Any, Sequence, TYPE_CHECKING

from . import schedules, schema, stamps
from .answers import WriteOutcomeUnknown
from .calls import Call, ConditionFailed, Flow
from .errors import ValidationError
from .limits import Limit, check_unique
from .validation import check_id

if TYPE_CHECKING:
    from ..state.limiter_core import LimiterCore


def entity_key(entity_id: str, resource: str) -> dict:
    return schema.entity_limits_key(check_id("entity_id", entity_id), check_id("resource", resource))


def resource_key(resource: str) -> dict:
    return schema.resource_defaults_key(check_id("resource", resource))


def system_key() -> dict:
    return schema.system_defaults_key()


def put_limits(core: LimiterCore, item_key: dict, limits: Sequence[Limit], schedule: Any = None) -> Flow[None]:
    """Store a level's limits (and its schedule, or none), keeping the level's other flags (disabled)."""
    if isinstance(limits, Limit) or not isinstance(limits, (list, tuple)):
        raise ValidationError("limits", "must be a list of Limit")
    checked = check_unique(limits, "limits")
    if not checked:
        raise ValidationError("limits", "must hold at least one Limit (use delete to remove limits)")
    entries = schedules.check_schedule(schedule)
    sets: dict[str, Any] = {schema.LIMITS_ATTR: schema.limits_value(checked)}
    if entries:
        sets[schema.SCHEDULE_ATTR] = schema.schedule_value(entries)
        sets[schema.SCHEDULE_SINCE_ATTR] = schema.n(core.clock())
        yield from stamps.update(core, item_key, sets, [])
    else:
        yield from stamps.update(core, item_key, sets, [schema.SCHEDULE_ATTR, schema.SCHEDULE_SINCE_ATTR])


def read_limits(core: LimiterCore, item_key: dict) -> Flow[list[Limit]]:
    item = yield from _read(core, item_key)
    return schema.limits_from_item(item) if item else []


def read_schedule(core: LimiterCore, item_key: dict) -> Flow[list[tuple[str, list[Limit]]]]:
    item = yield from _read(core, item_key)
    entries, _ = schema.schedule_from_item(item) if item else ((), 0)
    return [(cron, list(limits)) for cron, limits in entries]


def remove_limits(core: LimiterCore, item_key: dict) -> Flow[None]:
    """Remove a level's limits and schedule; the item goes when no flag is left on it."""
    yield from stamps.update(core, item_key, {}, [schema.LIMITS_ATTR, schema.SCHEDULE_ATTR, schema.SCHEDULE_SINCE_ATTR])
    yield from _delete_if_bare(core, item_key)


def _read(core: LimiterCore, item_key: dict) -> Flow[dict | None]:
    response: dict[str, Any] = yield Call("GetItem", {"TableName": core.table, "Key": item_key, "ConsistentRead": True})
    return response.get("Item")


def _delete_if_bare(core: LimiterCore, item_key: dict) -> Flow[None]:
    """Delete a limits item that holds nothing any more (a flag set meanwhile keeps it, and so does the
    version of an entity's configuration: a version must never go back, stamps.py)."""
    try:
        yield Call("DeleteItem", {
            "TableName": core.table, "Key": item_key,
            "ConditionExpression": "attribute_not_exists(#l) AND attribute_not_exists(#d) AND attribute_not_exists(#s) "
                                   "AND attribute_not_exists(#v)",
            "ExpressionAttributeNames": {"#l": schema.LIMITS_ATTR, "#d": schema.DISABLED_ATTR, "#s": schema.SCHEDULE_ATTR,
                                         "#v": schema.VERSION_ATTR},
        })
    except (ConditionFailed, WriteOutcomeUnknown):
        pass  # the item holds something again, or may be gone: a bare item left behind limits nothing


# -- disabled flags --------------------------------------------------------------------------------
def flag_key(entity_id: str | None, resource: str | None) -> dict:
    """Where a disabled flag lives: the entity's `_default_` limits item (the whole entity), the
    (entity, resource) limits item, or the resource's defaults item (every entity)."""
    if entity_id is None and resource is None:
        raise ValidationError("entity_id", "name an entity, a resource, or both")
    if entity_id is None:
        return resource_key(resource)  # type: ignore[arg-type]
    return entity_key(entity_id, schema.DEFAULT_RESOURCE if resource is None else resource)


def set_disabled(core: LimiterCore, item_key: dict, disabled: bool) -> Flow[None]:
    if disabled:
        yield from stamps.update(core, item_key, {schema.DISABLED_ATTR: {"BOOL": True}}, [])
    else:
        yield from stamps.update(core, item_key, {}, [schema.DISABLED_ATTR])
        yield from _delete_if_bare(core, item_key)


def read_disabled(core: LimiterCore, item_key: dict) -> Flow[bool]:
    item = yield from _read(core, item_key)
    return schema.disabled_of(item)
