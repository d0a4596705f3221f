"""Operator controls on buckets and on the entity graph, as flows: fill a bucket (`reset`), add tokens
(`top_up`), move an entity to another parent (`set_parent`).

Each is one unconditional or self-checking write that commutes with concurrent acquires: a reset
removes the bucket state (a bucket with no state is full), so an acquire landing after it fails its
busy-form condition and is written again in the idle form; a top-up subtracts from `tat`, which a
token bucket caps at capacity. Neither moves the consumed counters: usage stays what was admitted.
Leases taken before a move keep the levels they were taken from, so their refunds go where their
tokens came from.
"""

from __future__ import annotations

from typing import Any, Mapping, TYPE_CHECKING

from . import bucket, config, schema, stamps
from .calls import Call, ConditionFailed, Flow
from .errors import EntityNotFoundError, ValidationError
from .models import Entity
from .validation import charged_milli, check_id, check_number

if TYPE_CHECKING:
    from ..state.limiter_core import LimiterCore

# How far up the parent chain a cycle check walks before it gives up (a deeper tree is refused).
MAX_DEPTH = 32


def reset(core: LimiterCore, entity_id: str, resource: str) -> Flow[None]:
    """Fill every limit of the entity's bucket of `resource`."""
    check_id("entity_id", entity_id)
    check_id("resource", resource)
    key = schema.bucket_key(entity_id, resource)
    response = yield Call("GetItem", {"TableName": core.table, "Key": key, "ConsistentRead": True})
    names = sorted(schema.bucket_tats(response.get("Item")))
    if not names:
        return  # never used, or already reset: full
    attrs = {f"#b{i}": schema.tat_attr(name) for i, name in enumerate(names)}
    try:
        yield Call("UpdateItem", {
            "TableName": core.table, "Key": key, "UpdateExpression": "REMOVE " + ", ".join(attrs),
            "ConditionExpression": "attribute_exists(#pk)",  # never create a bucket item that holds nothing
            "ExpressionAttributeNames": {**attrs, "#pk": schema.PK},
        })
    except ConditionFailed:
        pass  # the bucket was deleted meanwhile: full anyway
    core.forget_bucket(entity_id, resource)


def top_up(core: LimiterCore, entity_id: str, resource: str, amounts: Mapping[str, Any]) -> Flow[None]:
    """Add tokens to the named limits of the entity's bucket, each capped at its capacity (stored limits:
    the amounts are converted with the limits that apply to the entity)."""
    check_id("entity_id", entity_id)
    check_id("resource", resource)
    # The stored configuration itself, not the acquire's levels: an operator tops up a disabled entity too.
    stored = yield from core.stored_config(entity_id, resource)
    limits = {limit.name: limit for limit in config.effective(stored.limits, None, entity_id, resource)}
    if not amounts:
        raise ValidationError("amounts", "name at least one limit, e.g. top_up('key', 'gpt-4', tpm=5000)")
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    sets = []
    for i, (name, amount) in enumerate(amounts.items()):
        limit = limits.get(name)
        if limit is None:
            raise ValidationError(f"top_up[{name!r}]", f"no limit named {name!r} applies; limits: {sorted(limits)}")
        check_number(f"top_up[{name!r}]", amount, positive=True)
        milli = -charged_milli(-amount, "top_up", name)  # given: rounded down
        names[f"#b{i}"] = schema.tat_attr(name)
        at = f":c{i}"
        values[at] = schema.n(bucket.clock(limit, core.clock()))
        values[f":k{i}"] = schema.n(-bucket.cost_ns(limit, -milli))  # a give-back: rounded in the limit's favour
        sets.append(f"#b{i} = if_not_exists(#b{i}, {at}) - :k{i}")
    yield Call("UpdateItem", {
        "TableName": core.table, "Key": schema.bucket_key(entity_id, resource),
        "UpdateExpression": "SET " + ", ".join(sets), "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values, "ReturnValues": "UPDATED_NEW",
    })
    core.forget_bucket(entity_id, resource)


def set_parent(core: LimiterCore, entity_id: str, parent_id: str | None, cascade: bool | None) -> Flow[Entity]:
    """Move an entity under `parent_id` (None: no parent). `cascade` None keeps the entity's setting
    (and turns it off without a parent). A move that would make the entity its own ancestor is refused."""
    check_id("entity_id", entity_id)
    if parent_id is not None:  # every input checked before the first request
        check_id("parent_id", parent_id)
    if cascade is not None and not isinstance(cascade, bool):
        raise ValidationError("cascade", f"must be True, False or None, got {cascade!r}")
    if parent_id is None and cascade:
        raise ValidationError("cascade", "cascade=True needs a parent_id")
    entity = yield from _read_entity(core, entity_id)
    if parent_id is not None:
        yield from _check_no_cycle(core, entity_id, parent_id)
    keep_cascade = entity.cascade if cascade is None else cascade
    new_cascade = keep_cascade and parent_id is not None
    stamp = yield from stamps.begin(core, entity_id)
    clause, stamp_names, stamp_values = stamp.fragment()
    names = {"#p": "parent_id", "#g": schema.GSI1PK, "#s": schema.GSI1SK, "#c": "cascade", **stamp_names}
    values: dict[str, Any] = {":c": {"BOOL": new_cascade}, **stamp_values}
    if parent_id is None:
        expression = f"SET #c = :c, {clause} REMOVE #p, #g, #s"
    else:
        expression = f"SET #c = :c, {clause}, #p = :p, #g = :g, #s = :s"
        values.update({":p": schema.s(parent_id), ":g": schema.s(schema.parent_key(parent_id)),
                       ":s": schema.s(schema.entity_pk(entity_id))})
    try:
        yield Call("UpdateItem", {
            "TableName": core.table, "Key": schema.meta_key(entity_id), "UpdateExpression": expression,
            "ConditionExpression": "attribute_exists(#pk)", "ExpressionAttributeNames": {**names, "#pk": schema.PK},
            "ExpressionAttributeValues": values,
        })
    except ConditionFailed:
        raise EntityNotFoundError(entity_id) from None  # deleted meanwhile
    yield from stamps.finish(core, stamp)
    return Entity(entity.entity_id, entity.name, parent_id, new_cascade, entity.metadata, entity.created_at)


def _read_entity(core: LimiterCore, entity_id: str) -> Flow[Entity]:
    response = yield Call("GetItem", {"TableName": core.table, "Key": schema.meta_key(entity_id), "ConsistentRead": True})
    item = response.get("Item")
    if not item:
        raise EntityNotFoundError(entity_id)
    return schema.entity_from_item(item)


def _check_no_cycle(core: LimiterCore, entity_id: str, parent_id: str) -> Flow[None]:
    """Walk up from the new parent: meeting the entity means the move would close a cycle."""
    current: str | None = parent_id
    for _ in range(MAX_DEPTH):
        if current == entity_id:
            raise ValidationError("parent_id", f"{parent_id!r} is {entity_id!r} or one of its descendants: a cycle")
        if current is None:
            return
        ancestor = yield from _read_entity(core, current)
        current = ancestor.parent_id
    raise ValidationError("parent_id", f"the chain above {parent_id!r} is deeper than {MAX_DEPTH} entities")
