"""A limits spec cut into items, each managed on its own: the system defaults, one resource's defaults,
one entity with all its stored limits. What the Pulumi resource `ZaeLimits` makes one dynamic resource
of (pulumi_component/limits_resource.py), on the same plan and driver as `limits apply`.

An item owns what it names and nothing more: syncing an entity item makes its record, its stored limits
and its disabled flags exactly the item's (a stored limit or a flag the item does not name is deleted: a
prune scoped to the entity; so is a resource item's flag), and
leaves its parent and every other entity alone (within an item an absent flag and `disabled: false` say
the same, so `split` drops the false ones: an item reads back from the table as it was given); removing it deletes the entity, refused while the table
holds children of it (the program does not manage them, and they would be left pointing at nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

from ..core.errors import ValidationError
from ..sync_limiter import SyncRateLimiter
from .apply import apply_plan
from .document import entity_document, from_document, level_document
from .model import Change, EntitySpec, LimitsSpec, StoredLimits, TableState
from .plan import plan
from .table import read_named

SYSTEM, RESOURCE, ENTITY = "system", "resource", "entity"


@dataclass(frozen=True)
class Item:
    kind: str  # SYSTEM, RESOURCE or ENTITY
    key: str  # "system", the resource, or the entity id
    value: Any  # its part of the document: limit text, or the entity's body
    parent: Optional[str] = None  # an entity's parent when it is an item of the same spec


def split(spec: LimitsSpec) -> list[Item]:
    """The spec's items, parents before their children."""
    spec = _true_flags_only(spec)
    items = []
    if spec.system is not None:
        items.append(Item(SYSTEM, SYSTEM, level_document(spec.system, None)))
    resources = sorted(set(spec.resources) | set(spec.disabled_resources))
    items += [Item(RESOURCE, r, level_document(spec.resources.get(r), spec.disabled_resources.get(r))) for r in resources]
    placed: set[str] = set()
    pending = sorted(spec.entities)
    while pending:  # the file's cycles were refused, so every pass places at least one
        ready = [e for e in pending if spec.entities[e].parent_id not in spec.entities or spec.entities[e].parent_id in placed]
        for entity_id in ready:
            entity = spec.entities[entity_id]
            parent = entity.parent_id if entity.parent_id in spec.entities else None
            items.append(Item(ENTITY, entity_id, entity_document(entity), parent))
            placed.add(entity_id)
        pending = [e for e in pending if e not in placed]
    return items


def _true_flags_only(spec: LimitsSpec) -> LimitsSpec:
    entities = {
        e: replace(entity, disabled=entity.disabled or None, disabled_for={r: True for r, flag in entity.disabled_for.items() if flag})
        for e, entity in spec.entities.items()
    }
    return replace(spec, entities=entities, disabled_resources={r: True for r, flag in spec.disabled_resources.items() if flag})


def item_spec(kind: str, key: str, value: Any) -> LimitsSpec:
    """The spec of one item, checked as a file holding only it would be (ValidationError, SpecError)."""
    if kind == SYSTEM:
        return from_document({"system": value}, "system defaults")
    if kind == RESOURCE:
        return from_document({"resources": {key: value}}, f"resource defaults {key}")
    if kind == ENTITY:
        return from_document({"entities": {key: value}}, f"entity {key}")
    raise ValidationError("kind", f"must be one of {SYSTEM}, {RESOURCE}, {ENTITY}, got {kind!r}")


def _scope(kind: str, key: str) -> LimitsSpec:
    """A spec naming the item with nothing in it: what to read to know the item's state."""
    if kind == SYSTEM:
        return LimitsSpec(system=StoredLimits(()))
    if kind == RESOURCE:
        return LimitsSpec(resources={key: StoredLimits(())})
    return LimitsSpec(entities={key: EntitySpec(key)})


def _state(limiter: SyncRateLimiter, spec: LimitsSpec, follow_parents: bool) -> TableState:
    return limiter._run(read_named(limiter._core, spec, follow_parents))


def sync_item(limiter: SyncRateLimiter, kind: str, key: str, value: Any) -> tuple[Change, ...]:
    """Make the table hold the item; the writes applied (none when it already does). Raises
    SpecError (bad item, or a parent that exists nowhere) before writing, ApplyFailed on a failed write."""
    spec = item_spec(kind, key, value)
    return apply_plan(limiter, plan(spec, _state(limiter, spec, follow_parents=True), prune=True))


def remove_item(limiter: SyncRateLimiter, kind: str, key: str) -> tuple[Change, ...]:
    """Delete the item from the table (nothing when it is not there)."""
    state = _state(limiter, _scope(kind, key), follow_parents=False)
    if kind == ENTITY and key in state.entities:
        children = [child.entity_id for child in limiter.get_children(key)]
        if children:
            raise ValidationError(
                f"entity {key}",
                f"still has children this program does not manage ({', '.join(children)}): delete them or give "
                "them another parent first",
            )
    return apply_plan(limiter, plan(LimitsSpec(), state, prune=True))


def read_item(limiter: SyncRateLimiter, kind: str, key: str) -> Optional[Any]:
    """The item as the table holds it now, in the form `split` gives (None: not in the table)."""
    state = _state(limiter, _scope(kind, key), follow_parents=False)
    if kind == SYSTEM:
        return level_document(state.system, None) if state.system else None
    if kind == RESOURCE:
        flagged = (None, key) in state.disabled
        if key not in state.resources and not flagged:
            return None
        return level_document(state.resources.get(key), True if flagged else None)
    entity = state.entities.get(key)
    if entity is None:
        return None
    limits = state.entity_limits.get(key, {})
    flags = {resource: True for entity_id, resource in state.disabled if entity_id == key and resource is not None}
    whole = True if (key, None) in state.disabled else None
    return entity_document(EntitySpec(key, entity.name, entity.parent_id, entity.cascade, dict(entity.metadata), dict(limits),
                                      whole, flags))
