"""Entity records: create, read, delete, and children through the parent index. Flows (see calls.py)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping

from . import schema, stamps
from .answers import WriteOutcomeUnknown
from .calls import Call, ConditionFailed, Flow
from .errors import EntityExistsError, EntityNotFoundError, RateLimiterUnavailable, ValidationError
from .batches import batch_write, pages
from .models import Entity
from .validation import MAX_ID_LENGTH, check_id

if TYPE_CHECKING:
    from ..state.limiter_core import LimiterCore

MAX_METADATA_ENTRIES = 50
MAX_METADATA_VALUE = 1024
BATCH_WRITE_SIZE = 25


def _check_metadata(metadata: Any) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ValidationError("metadata", f"must be a mapping of strings, got {type(metadata).__name__}")
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise ValidationError("metadata", f"at most {MAX_METADATA_ENTRIES} entries")
    result = {}
    for k, v in metadata.items():
        if not isinstance(k, str) or not k or len(k) > MAX_ID_LENGTH:
            raise ValidationError("metadata", f"keys must be non-empty strings of at most {MAX_ID_LENGTH} characters, got {k!r}")
        if not isinstance(v, str) or len(v) > MAX_METADATA_VALUE:
            raise ValidationError(f"metadata[{k!r}]", f"must be a string of at most {MAX_METADATA_VALUE} characters")
        result[k] = v
    return result


def create_entity(
    core: LimiterCore,
    entity_id: str,
    name: str | None = None,
    parent_id: str | None = None,
    cascade: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> Flow[Entity]:
    check_id("entity_id", entity_id)
    if name is not None and (not isinstance(name, str) or len(name) > MAX_ID_LENGTH):
        raise ValidationError("name", f"must be a string of at most {MAX_ID_LENGTH} characters")
    if parent_id is not None:
        check_id("parent_id", parent_id)
        if parent_id == entity_id:
            raise ValidationError("parent_id", "an entity cannot be its own parent")
    if not isinstance(cascade, bool):
        raise ValidationError("cascade", f"must be True or False, got {cascade!r}")
    if cascade and parent_id is None:
        raise ValidationError("cascade", "cascade=True needs a parent_id")
    entity = Entity(
        entity_id=entity_id,
        name=name,
        parent_id=parent_id,
        cascade=cascade,
        metadata=_check_metadata(metadata),
        created_at=datetime.now(timezone.utc).replace(microsecond=0),
    )
    if parent_id is not None:
        response = yield Call("GetItem", {"TableName": core.table, "Key": schema.meta_key(parent_id), "ConsistentRead": True})
        if "Item" not in response:
            raise EntityNotFoundError(parent_id)
    # Buckets of the id may exist already (acquires need no record): they learn of the record's parent
    # through its version (stamps.py).
    stamp = yield from stamps.begin(core, entity_id)
    item = {**schema.entity_item(entity), schema.VERSION_ATTR: schema.n(stamp.version)}
    try:
        yield Call(
            "PutItem",
            {
                "TableName": core.table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": schema.PK},
            },
        )
    except ConditionFailed:
        raise EntityExistsError(entity_id) from None
    except WriteOutcomeUnknown as unknown:
        # The put may have landed with its answer lost (it is never sent again: a resend would fail on
        # its own first write). The record read back says which: ours, attribute for attribute, or not.
        response = yield Call("GetItem", {"TableName": core.table, "Key": schema.meta_key(entity_id), "ConsistentRead": True})
        if response.get("Item") != item:
            raise RateLimiterUnavailable(
                f"create_entity {entity_id!r}: the write's answer was lost and the record read back is "
                f"{'missing' if 'Item' not in response else 'not the one written'}; it may still land: "
                "get_entity tells later", unknown,
            ) from unknown
    yield from stamps.finish(core, stamp)
    return entity


def get_entity(core: LimiterCore, entity_id: str) -> Flow[Entity]:
    check_id("entity_id", entity_id)
    response = yield Call("GetItem", {"TableName": core.table, "Key": schema.meta_key(entity_id), "ConsistentRead": True})
    if "Item" not in response:
        raise EntityNotFoundError(entity_id)
    return schema.entity_from_item(response["Item"])


def delete_entity(core: LimiterCore, entity_id: str) -> Flow[None]:
    """Delete the entity's record, stored limits and buckets. Its usage snapshots stay until they expire:
    they are history, and billing may need them."""
    check_id("entity_id", entity_id)
    items = yield from pages(Call("Query", {
        "TableName": core.table,
        "KeyConditionExpression": "#pk = :pk",
        "ExpressionAttributeNames": {"#pk": schema.PK, "#sk": schema.SK},
        "ExpressionAttributeValues": {":pk": schema.s(schema.entity_pk(entity_id))},
        "ProjectionExpression": "#pk, #sk",
        "ConsistentRead": True,
    }))
    keys = [item for item in items if not item[schema.SK]["S"].startswith(schema.USAGE_PREFIX)]
    if not keys:
        raise EntityNotFoundError(entity_id)
    # The record goes last, so an interrupted delete can be run again and finds the entity still there.
    keys.sort(key=lambda k: k[schema.SK]["S"] == schema.META_SK)
    for i in range(0, len(keys), BATCH_WRITE_SIZE):
        pending = [{"DeleteRequest": {"Key": k}} for k in keys[i : i + BATCH_WRITE_SIZE]]
        yield from batch_write(core.table, pending)
    core.invalidate_config()
    core.forget_entity(entity_id)


def get_children(core: LimiterCore, parent_id: str) -> Flow[list[Entity]]:
    check_id("parent_id", parent_id)
    items = yield from pages(Call("Query", {
        "TableName": core.table,
        "IndexName": schema.GSI1,
        "KeyConditionExpression": "#gpk = :gpk",
        "ExpressionAttributeNames": {"#gpk": schema.GSI1PK},
        "ExpressionAttributeValues": {":gpk": schema.s(schema.parent_key(parent_id))},
    }))
    return sorted((schema.entity_from_item(item) for item in items), key=lambda e: e.entity_id)
