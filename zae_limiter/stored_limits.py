"""Stored limits at the three levels: entity (per resource or `_default_`), resource, system. Flows."""

from __future__ import annotations

from typing import Any, Sequence

from . import schema
from .calls import Call, Flow
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


def put_limits(core: LimiterCore, item_key: dict, limits: Sequence[Limit]) -> Flow[None]:
    if isinstance(limits, Limit) or not isinstance(limits, (list, tuple)):
        raise ValidationError("limits", "must be a list of Limit")
    checked = check_unique(limits, "limits")
    if not checked:
        raise ValidationError("limits", "must hold at least one Limit (use delete to remove limits)")
    yield Call("PutItem", {"TableName": core.table, "Item": schema.limits_item(item_key, checked)})
    core.invalidate_config()


def read_limits(core: LimiterCore, item_key: dict) -> Flow[list[Limit]]:
    response: dict[str, Any] = yield Call("GetItem", {"TableName": core.table, "Key": item_key, "ConsistentRead": True})
    item = response.get("Item")
    return schema.limits_from_item(item) if item else []


def remove_limits(core: LimiterCore, item_key: dict) -> Flow[None]:
    yield Call("DeleteItem", {"TableName": core.table, "Key": item_key})
    core.invalidate_config()
