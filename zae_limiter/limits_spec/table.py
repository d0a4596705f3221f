"""The table's side of a plan, as flows (see zae_limiter/calls.py): reading what a limits file may touch,
and changing an entity record in place (the runtime has no update-entity operation yet).

Reads are consistent (ConsistentRead), so an apply right after a write plans against that write.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from ..core import schema, stamps
from ..core.calls import Call, ConditionFailed, Flow
from ..core.config import key_id
from ..core.entities import get_entity
from ..core.errors import EntityNotFoundError
from ..state.limiter_core import LimiterCore
from ..core.models import Entity
from .model import EntityRecord, FlagKey, LimitsSpec, StoredLimits, TableState, stored

BATCH_GET_SIZE = 100  # DynamoDB's BatchGetItem takes at most 100 keys
# One Query reads an entity's record and its stored limits, and neither its buckets nor its usage: in its
# partition the sort keys order #BUCKET#... < #LIMIT#... < #META < #USAGE#..., so the record and the limits
# are the range [#LIMIT#, #META]. Checked here, so a new prefix that breaks the order fails loudly.
assert schema.BUCKET_PREFIX < schema.LIMIT_PREFIX < schema.META_SK < schema.USAGE_PREFIX


def _limits_of(item: dict[str, Any]) -> Optional[StoredLimits]:
    limits = schema.limits_from_item(item)
    if not limits:
        return None  # an item without limits limits nothing (as the runtime reads it); it may hold a flag
    return stored(limits, schema.schedule_from_item(item)[0])


class _Collected:
    """Items of interest as they are read, sorted into a TableState at the end."""

    def __init__(self) -> None:
        self.system: Optional[StoredLimits] = None
        self.resources: dict[str, StoredLimits] = {}
        self.entities: dict[str, Entity] = {}
        self.entity_limits: dict[str, dict[str, StoredLimits]] = {}
        self.disabled: set[FlagKey] = set()

    def add(self, item: dict[str, Any]) -> None:
        pk, sk = key_id(item)
        entity_id = schema.entity_id_of(pk)
        if entity_id is not None and sk == schema.META_SK:
            self.entities[entity_id] = schema.entity_from_item(item)
        elif entity_id is not None and sk.startswith(schema.LIMIT_PREFIX):
            resource = sk[len(schema.LIMIT_PREFIX):]
            limits = _limits_of(item)
            if limits:
                self.entity_limits.setdefault(entity_id, {})[resource] = limits
            if schema.disabled_of(item):  # on `_default_`: the whole entity (core/stored_limits.flag_key)
                self.disabled.add((entity_id, None if resource == schema.DEFAULT_RESOURCE else resource))
        elif sk == schema.DEFAULTS_SK and pk == schema.SYSTEM_PK:
            self.system = _limits_of(item)
        elif sk == schema.DEFAULTS_SK and pk.startswith(schema.RESOURCE_PREFIX):
            resource = pk[len(schema.RESOURCE_PREFIX):]
            limits = _limits_of(item)
            if limits:
                self.resources[resource] = limits
            if schema.disabled_of(item):
                self.disabled.add((None, resource))

    def state(self) -> TableState:
        return TableState(self.system, self.resources, self.entities, self.entity_limits, disabled=frozenset(self.disabled))


def _read_entity(core: LimiterCore, entity_id: str, into: _Collected) -> Flow[None]:
    start = None
    while True:
        request = {
            "TableName": core.table,
            "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :first AND :last",
            "ExpressionAttributeNames": {"#pk": schema.PK, "#sk": schema.SK},
            "ExpressionAttributeValues": {
                ":pk": schema.s(schema.entity_pk(entity_id)),
                ":first": schema.s(schema.LIMIT_PREFIX),
                ":last": schema.s(schema.META_SK),
            },
            "ConsistentRead": True,
        }
        if start:
            request["ExclusiveStartKey"] = start
        response = yield Call("Query", request)
        for item in response.get("Items", []):
            into.add(item)
        start = response.get("LastEvaluatedKey")
        if not start:
            return


def read_named(core: LimiterCore, spec: LimitsSpec, follow_parents: bool = True) -> Flow[TableState]:
    """What the table holds of what `spec` names: its system and resource defaults, its entities with
    all their stored limits, and (with `follow_parents`) every ancestor of those entities, so the plan
    can refuse a parent that exists nowhere or a cycle through the table."""
    into = _Collected()
    keys = ([schema.system_defaults_key()] if spec.system is not None else []) + [
        schema.resource_defaults_key(resource) for resource in sorted(set(spec.resources) | set(spec.disabled_resources))
    ]
    for i in range(0, len(keys), BATCH_GET_SIZE):
        items = yield from core.batch_get(keys[i : i + BATCH_GET_SIZE])
        for item in items.values():
            into.add(item)
    read: set[str] = set()
    pending = sorted(spec.entities)
    while pending:
        entity_id = pending.pop()
        if entity_id in read:
            continue
        read.add(entity_id)
        yield from _read_entity(core, entity_id, into)
        if follow_parents:
            wanted = spec.entities.get(entity_id)
            parent = wanted.parent_id if wanted is not None else getattr(into.entities.get(entity_id), "parent_id", None)
            if parent is not None and parent not in read:
                pending.append(parent)
    return into.state()


def read_table(core: LimiterCore) -> Flow[TableState]:
    """Every entity record and stored limits item of the table: a Scan (it reads the whole table,
    buckets and usage included, and keeps these), for a prune."""
    into = _Collected()
    start = None
    while True:
        request = {
            "TableName": core.table,
            "FilterExpression": "#sk = :meta OR #sk = :defaults OR begins_with(#sk, :limit)",
            "ExpressionAttributeNames": {"#sk": schema.SK},
            "ExpressionAttributeValues": {
                ":meta": schema.s(schema.META_SK),
                ":defaults": schema.s(schema.DEFAULTS_SK),
                ":limit": schema.s(schema.LIMIT_PREFIX),
            },
            "ConsistentRead": True,
        }
        if start:
            request["ExclusiveStartKey"] = start
        response = yield Call("Scan", request)
        for item in response.get("Items", []):
            into.add(item)
        start = response.get("LastEvaluatedKey")
        if not start:
            return into.state()


def _record_attributes() -> set[str]:
    """Every attribute an entity record can carry besides its key, from the codec itself."""
    every = Entity("x", name="x", parent_id="p", cascade=True, metadata={"k": "v"}, created_at=datetime.now(timezone.utc))
    return set(schema.entity_item(every)) - {schema.PK, schema.SK}


def update_entity_record(core: LimiterCore, entity_id: str, record: EntityRecord) -> Flow[Entity]:
    """Set an existing entity's name, parent, cascade and metadata. One UpdateItem of the record alone,
    so its stored limits and buckets (other items) are untouched, and so are attributes of the record this
    version does not know; `created_at` is kept. A new parent must exist. The caller (the plan) has
    refused cycles."""
    current = yield from get_entity(core, entity_id)
    entity = Entity(entity_id, record.name, record.parent_id, record.cascade, dict(record.metadata), current.created_at)
    if entity.parent_id is not None:
        response = yield Call("GetItem", {"TableName": core.table, "Key": schema.meta_key(entity.parent_id), "ConsistentRead": True})
        if "Item" not in response:
            raise EntityNotFoundError(entity.parent_id)
    stamp = yield from stamps.begin(core, entity_id)
    item = {**schema.entity_item(entity), schema.VERSION_ATTR: schema.n(stamp.version)}
    values = {name: value for name, value in item.items() if name not in (schema.PK, schema.SK)}
    removed = sorted(_record_attributes() - set(values))
    names = {f"#a{i}": name for i, name in enumerate([*values, *removed])}
    by_name = {name: alias for alias, name in names.items()}
    expression = "SET " + ", ".join(f"{by_name[name]} = :v{i}" for i, name in enumerate(values))
    if removed:
        expression += " REMOVE " + ", ".join(by_name[name] for name in removed)
    try:
        yield Call(
            "UpdateItem",
            {
                "TableName": core.table,
                "Key": schema.meta_key(entity_id),
                "UpdateExpression": expression,
                "ConditionExpression": "attribute_exists(#pk)",
                "ExpressionAttributeNames": {**names, "#pk": schema.PK},
                "ExpressionAttributeValues": {f":v{i}": value for i, value in enumerate(values.values())},
            },
        )
    except ConditionFailed:
        raise EntityNotFoundError(entity_id) from None
    yield from stamps.finish(core, stamp)
    return entity

