"""Versions of an entity's own configuration, stamped where acquires will see them (config_cache.py).

A change to an entity's record, own limits or own flags is made in three steps:
1. `begin`: one Query of the entity's items up to its record (its buckets, limits items and record,
   never its usage history) gives the highest version so far, and the buckets the change concerns;
2. the change writes its item with the new version (`fragment`);
3. `finish` stamps the new version on those buckets, never lowering one.
An acquire built from an older version of the configuration then fails its condition on one of those
buckets and reads the configuration again; one in flight during the change may still land, as with
any cache of the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import schema
from .answers import WriteOutcomeUnknown
from .batches import pages
from .calls import Call, ConditionFailed, Flow
from .errors import BucketContention

if TYPE_CHECKING:
    from ..state.limiter_core import LimiterCore


@dataclass(frozen=True)
class Stamp:
    entity_id: str
    version: int
    buckets: tuple[dict, ...]  # keys of the buckets to stamp

    def fragment(self) -> tuple[str, dict[str, str], dict[str, Any]]:
        """`SET` clause, names and values that write the version on the changed item."""
        return "#cv = :cv", {"#cv": schema.VERSION_ATTR}, {":cv": schema.n(self.version)}


def owner_of(item_key: dict) -> tuple[str, str] | None:
    """(entity, resource) of an entity's limits item, or None for a shared item (resource or system)."""
    entity_id = schema.entity_id_of(item_key[schema.PK]["S"])
    sk = item_key[schema.SK]["S"]
    if entity_id is None or not sk.startswith(schema.LIMIT_PREFIX):
        return None
    return entity_id, sk[len(schema.LIMIT_PREFIX):]


def begin(core: "LimiterCore", entity_id: str, resource: str | None = None) -> Flow[Stamp]:
    """The next version of `entity_id`'s configuration, and its buckets of `resource` (every resource
    for a change to the record or to `_default_`, None)."""
    items = yield from pages(Call("Query", {
        "TableName": core.table,
        "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :first AND :last",
        "ExpressionAttributeNames": {"#pk": schema.PK, "#sk": schema.SK, "#cv": schema.VERSION_ATTR},
        "ExpressionAttributeValues": {
            ":pk": schema.s(schema.entity_pk(entity_id)),
            ":first": schema.s(schema.BUCKET_PREFIX),
            ":last": schema.s(schema.META_SK),
        },
        "ProjectionExpression": "#pk, #sk, #cv",
        "ConsistentRead": True,
    }))
    highest, buckets = 0, []
    for item in items:
        highest = max(highest, schema.version_of(item))
        bucket = schema.bucket_resource_of(item[schema.SK]["S"])
        if bucket is not None and (resource in (None, schema.DEFAULT_RESOURCE) or bucket == resource):
            buckets.append({schema.PK: item[schema.PK], schema.SK: item[schema.SK]})
    # Versions are clock readings, kept increasing even where the admin's clock is behind the last one.
    return Stamp(entity_id, max(core.clock(), highest + 1), tuple(buckets))


STAMP_ATTEMPTS = 3


def finish(core: "LimiterCore", stamp: Stamp) -> Flow[None]:
    for key in stamp.buckets:
        yield from _stamp(core, key, stamp.version)
    core.invalidate_config()


def _stamp(core: "LimiterCore", key: dict, version: int) -> Flow[None]:
    """Raise one bucket's version to `version`. The write is conditional, so a transport never resends
    it; when its answer is lost, the bucket read back says whether it landed, and if not it is sent
    again (a late first one can then only fail its condition)."""
    for _ in range(STAMP_ATTEMPTS):
        try:
            yield Call("UpdateItem", {
                "TableName": core.table, "Key": key, "UpdateExpression": "SET #cv = :cv",
                "ConditionExpression": "attribute_exists(#pk) AND (attribute_not_exists(#cv) OR #cv < :cv)",
                "ExpressionAttributeNames": {"#cv": schema.VERSION_ATTR, "#pk": schema.PK},
                "ExpressionAttributeValues": {":cv": schema.n(version)},
            })
            return
        except ConditionFailed:
            return  # deleted meanwhile, or already stamped by a later change
        except WriteOutcomeUnknown:
            response = yield Call("GetItem", {"TableName": core.table, "Key": key, "ConsistentRead": True})
            item = response.get("Item")
            if item is None or schema.version_of(item) >= version:
                return
    raise WriteOutcomeUnknown(f"the configuration's version could not be stamped on {key[schema.SK]['S']}")


def update(core: "LimiterCore", item_key: dict, sets: list[str], removes: list[str], names: dict[str, str],
           values: dict[str, Any]) -> Flow[None]:
    """One UpdateItem of a limits item, versioned and stamped when the item is an entity's own."""
    owner = owner_of(item_key)
    if owner is None:
        # A shared item (a resource's or the system's defaults): sets and removes only, so a resend is harmless.
        yield Call("UpdateItem", _request(core.table, item_key, sets, removes, names, values))
        core.invalidate_config()
        return
    for _ in range(STAMP_ATTEMPTS):
        stamp = yield from begin(core, owner[0], owner[1])
        clause, more_names, more_values = stamp.fragment()
        all_names, all_values = {**names, **more_names}, {**values, **more_values}
        request = _request(core.table, item_key, [*sets, clause], removes, all_names, all_values)
        # What the item holds once this write has landed (each SET clause is `#name = :value`).
        landed = {all_names[name]: all_values[value] for name, value in (c.split(" = ") for c in [*sets, clause])}
        if (yield from _write_versioned(core, request, stamp.version, landed, [all_names[n] for n in removes])):
            yield from finish(core, stamp)
            return
        # A later version was there when this write arrived: another change of the same item (of other
        # attributes, maybe: a disable beside a set_limits). Written again above it, as it arrived after.
    raise BucketContention(f"the limits item of {owner[0]}/{owner[1]} changed under this client {STAMP_ATTEMPTS} "
                           "times in a row; this change was not applied, try again")


def _request(table: str, item_key: dict, sets: list[str], removes: list[str], names: dict[str, str],
             values: dict[str, Any]) -> dict[str, Any]:
    expression = " ".join(part for part in (
        "SET " + ", ".join(sets) if sets else "", "REMOVE " + ", ".join(removes) if removes else "") if part)
    request: dict[str, Any] = {"TableName": table, "Key": item_key, "UpdateExpression": expression,
                               "ExpressionAttributeNames": names}
    if values:
        request["ExpressionAttributeValues"] = values
    return request


def _write_versioned(core: "LimiterCore", request: dict[str, Any], version: int, landed: dict[str, Any],
                     removed: list[str]) -> Flow[bool]:
    """Write an entity's own limits item at `version`: True once the item holds this write (`landed`, and
    none of `removed`), False when another change's version, as late or later, is there (it landed while
    this call was under way: this one is written again above it, which orders it after that one, as its
    caller has not been answered yet; two admins whose clocks are behind the stored version pick the
    same next one, hence the comparison of what the item holds, not only its version). Conditional
    on the version, so no transport resends it: unconditional, a resend after another admin's change set
    the version back below the one stamped on the buckets, and every acquire on them failed its version
    check, read the older item again and failed again. When the answer is lost, the item read back says
    whether it landed; if not, it is sent again (a late first one can then only fail its condition)."""
    request = {
        **request,
        "ConditionExpression": "attribute_not_exists(#cv) OR #cv < :cv",
        "ExpressionAttributeValues": {**request.get("ExpressionAttributeValues", {}), ":cv": schema.n(version)},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    for _ in range(STAMP_ATTEMPTS):
        try:
            yield Call("UpdateItem", request)
            return True
        except ConditionFailed as failed:  # this write is there (a first send that landed late), or another
            return failed.item is not None and _holds(failed.item, landed, removed)
        except WriteOutcomeUnknown:
            response = yield Call("GetItem", {"TableName": core.table, "Key": request["Key"], "ConsistentRead": True})
            item = response.get("Item")
            if item is not None and _holds(item, landed, removed):
                return True
            if item is not None and schema.version_of(item) >= version:
                return False
    raise WriteOutcomeUnknown(f"the change to {request['Key'][schema.SK]['S']} may or may not have been applied")


def _holds(item: dict[str, Any], landed: dict[str, Any], removed: list[str]) -> bool:
    return all(item.get(name) == value for name, value in landed.items()) and not any(name in item for name in removed)
