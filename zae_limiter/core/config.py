"""Which limits apply to an (entity, resource): the stored configuration and its precedence.

Precedence: stored limits for (entity, resource) > the entity's `_default_` > resource defaults >
system defaults > the `limits=` argument. The first level that holds any limit wins whole.
Under cascade, the parent's limits are resolved the same way, and the call also takes from the parent's
limits that carry the names the call consumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from . import schedules, schema
from .errors import ValidationError
from .limits import Limit
from .models import Entity


@dataclass(frozen=True)
class StoredConfig:
    """What the table holds for one (entity, resource); cached by the limiter."""

    entity: Entity | None
    limits: tuple[Limit, ...] | None
    parent_limits: tuple[Limit, ...] | None  # only when the entity cascades to a parent
    # What is disabled, if anything: (entity id, scope) with scope "entity", "resource" or
    # "entity_resource" (the entity's own flags first, then its cascade parent's).
    disabled: tuple[str, str] | None = None

    @property
    def parent_id(self) -> str | None:
        if self.entity is not None and self.entity.cascade and self.entity.parent_id:
            return self.entity.parent_id
        return None


def own_keys(entity_id: str, resource: str) -> list[dict]:
    """Keys read for an entity, most specific first, without duplicates."""
    keys = [schema.entity_limits_key(entity_id, resource)]
    if resource != schema.DEFAULT_RESOURCE:
        keys.append(schema.entity_limits_key(entity_id, schema.DEFAULT_RESOURCE))
    return keys


def shared_keys(resource: str) -> list[dict]:
    return [schema.resource_defaults_key(resource), schema.system_defaults_key()]


def disabled_scope(entity_id: str, resource: str, items: Mapping[tuple[str, str], Mapping[str, Any]],
                   own_only: bool = False) -> str | None:
    """Which flag disables acquires of (entity, resource), most specific first, if any (`own_only`: the
    entity's own flags, not the resource's)."""
    candidates = [("entity_resource", schema.entity_limits_key(entity_id, resource))]
    if resource != schema.DEFAULT_RESOURCE:
        candidates.append(("entity", schema.entity_limits_key(entity_id, schema.DEFAULT_RESOURCE)))
    else:
        candidates[0] = ("entity", candidates[0][1])
    if not own_only:
        candidates.append(("resource", schema.resource_defaults_key(resource)))
    for scope, k in candidates:
        if schema.disabled_of(items.get(key_id(k))):
            return scope
    return None


def first_limits(
    keys: Sequence[dict], items: Mapping[tuple[str, str], Mapping[str, Any]], now_ns: int
) -> tuple[tuple[Limit, ...] | None, int | None]:
    """The limits of the first level holding any, as in force at `now_ns` (schedules.py), and when a
    schedule next changes them (ns; None: no schedule on that level)."""
    for k in keys:
        item = items.get(key_id(k))
        if item is not None:
            limits = schema.limits_from_item(item)
            if limits:
                schedule, since = schema.schedule_from_item(item)
                if not schedule:
                    return tuple(limits), None
                return schedules.in_force(tuple(limits), schedule, since, now_ns)
    return None, None


def key_id(k: Mapping[str, Any]) -> tuple[str, str]:
    return (k[schema.PK]["S"], k[schema.SK]["S"])


def effective(stored: tuple[Limit, ...] | None, fallback: Sequence[Limit] | None, entity_id: str, resource: str) -> tuple[Limit, ...]:
    if stored:
        return stored
    if fallback:
        return tuple(fallback)
    raise ValidationError(
        "limits",
        f"no limits for entity {entity_id!r} on resource {resource!r}: none stored (entity, resource, "
        "system) and none passed as limits=",
    )
