"""Stored limits at the three levels: entity (per resource or `_default_`), resource, system. Flows."""

from __future__ import annotations

from typing import Any, Sequence

from . import schedules, schema
from .calls import Call, ConditionFailed, Flow
from .errors import ValidationError
from .flows import LimiterCore
from .limits import Limit, check_unique
from .validation import check_id


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
    names = {"#l": schema.LIMITS_ATTR, "#s": schema.SCHEDULE_ATTR, "#t": schema.SCHEDULE_SINCE_ATTR}
    values: dict[str, Any] = {":l": schema.limits_value(checked)}
    if entries:
        expression = "SET #l = :l, #s = :s, #t = :t"
        values[":s"] = schema.schedule_value(entries)
        values[":t"] = schema.n(core.clock())
    else:
        expression = "SET #l = :l REMOVE #s, #t"
    yield Call("UpdateItem", {"TableName": core.table, "Key": item_key, "UpdateExpression": expression,
                              "ExpressionAttributeNames": names, "ExpressionAttributeValues": values})
    core.invalidate_config()


def read_limits(core: LimiterCore, item_key: dict) -> Flow[list[Limit]]:
    item = yield from _read(core, item_key)
    return schema.limits_from_item(item) if item else []


def read_schedule(core: LimiterCore, item_key: dict) -> Flow[list[tuple[str, list[Limit]]]]:
    item = yield from _read(core, item_key)
    entries, _ = schema.schedule_from_item(item) if item else ((), 0)
    return [(cron, list(limits)) for cron, limits in entries]


def remove_limits(core: LimiterCore, item_key: dict) -> Flow[None]:
    """Remove a level's limits and schedule; the item goes when no flag is left on it."""
    yield Call("UpdateItem", {
        "TableName": core.table, "Key": item_key, "UpdateExpression": "REMOVE #l, #s, #t",
        "ExpressionAttributeNames": {"#l": schema.LIMITS_ATTR, "#s": schema.SCHEDULE_ATTR, "#t": schema.SCHEDULE_SINCE_ATTR},
    })
    yield from _delete_if_bare(core, item_key)
    core.invalidate_config()


def _read(core: LimiterCore, item_key: dict) -> Flow[dict | None]:
    response: dict[str, Any] = yield Call("GetItem", {"TableName": core.table, "Key": item_key, "ConsistentRead": True})
    return response.get("Item")


def _delete_if_bare(core: LimiterCore, item_key: dict) -> Flow[None]:
    """Delete a limits item that holds nothing any more (a flag set meanwhile keeps it)."""
    try:
        yield Call("DeleteItem", {
            "TableName": core.table, "Key": item_key,
            "ConditionExpression": "attribute_not_exists(#l) AND attribute_not_exists(#d) AND attribute_not_exists(#s)",
            "ExpressionAttributeNames": {"#l": schema.LIMITS_ATTR, "#d": schema.DISABLED_ATTR, "#s": schema.SCHEDULE_ATTR},
        })
    except ConditionFailed:
        pass


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
    names = {"#d": schema.DISABLED_ATTR}
    if disabled:
        yield Call("UpdateItem", {"TableName": core.table, "Key": item_key, "UpdateExpression": "SET #d = :t",
                                  "ExpressionAttributeNames": names, "ExpressionAttributeValues": {":t": {"BOOL": True}}})
    else:
        yield Call("UpdateItem", {"TableName": core.table, "Key": item_key, "UpdateExpression": "REMOVE #d",
                                  "ExpressionAttributeNames": names})
        yield from _delete_if_bare(core, item_key)
    core.invalidate_config()


def read_disabled(core: LimiterCore, item_key: dict) -> Flow[bool]:
    item = yield from _read(core, item_key)
    return schema.disabled_of(item)
