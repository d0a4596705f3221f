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
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

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
    """Raise one bucket's version to `version`, never lowering it: a refusal means the bucket is gone or
    a later change stamped it already, and either needs nothing more."""
    def settled(item: dict | None) -> bool | None:
        return True if item is None or schema.version_of(item) >= version else None

    yield from _settle(core, {
        "TableName": core.table, "Key": key, "UpdateExpression": "SET #cv = :cv",
        "ConditionExpression": "attribute_exists(#pk) AND (attribute_not_exists(#cv) OR #cv < :cv)",
        "ExpressionAttributeNames": {"#cv": schema.VERSION_ATTR, "#pk": schema.PK},
        "ExpressionAttributeValues": {":cv": schema.n(version)},
    }, settled, f"the configuration's version could not be stamped on {key[schema.SK]['S']}")


def update(core: "LimiterCore", item_key: dict, sets: Mapping[str, Any], removes: Sequence[str]) -> Flow[None]:
    """One UpdateItem of a limits item: the attributes of `sets` written (name to DynamoDB value), those
    of `removes` removed; versioned and stamped when the item is an entity's own."""
    owner = owner_of(item_key)
    if owner is None:
        # A shared item (a resource's or the system's defaults): sets and removes only, so a resend is harmless.
        yield Call("UpdateItem", _request(core.table, item_key, sets, removes))
        core.invalidate_config()
        return
    for _ in range(STAMP_ATTEMPTS):
        stamp = yield from begin(core, owner[0], owner[1])
        landed = {**sets, schema.VERSION_ATTR: schema.n(stamp.version)}
        request = _request(core.table, item_key, landed, removes)
        # Conditional on the version, so no transport resends it: unconditional, a resend after another
        # admin's change set the version back below the one stamped on the buckets, and every acquire on
        # them failed its version check, read the older item again and failed again.
        request["ConditionExpression"] = "attribute_not_exists(#cv) OR #cv < :cv"
        request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"

        def settled(item: dict | None, landed: dict = landed, version: int = stamp.version) -> bool | None:
            if item is None:
                return None
            if all(item.get(name) == value for name, value in landed.items()) and not any(name in item for name in removes):
                return True  # this write is there (a first send that landed late, or read back)
            return False if schema.version_of(item) >= version else None

        what = f"the change to {item_key[schema.SK]['S']} may or may not have been applied"
        if (yield from _settle(core, request, settled, what)):
            yield from finish(core, stamp)
            return
        # Another change's version, as late or later, was there when this write arrived (of other
        # attributes of the item, maybe: a disable beside a set_limits). This one is written again above
        # it, which orders it after that one, as its caller has not been answered yet. Two admins whose
        # clocks are behind the stored version pick the same next one: hence `settled` compares what the
        # item holds, not only its version.
    raise BucketContention(f"the limits item of {owner[0]}/{owner[1]} changed under this client {STAMP_ATTEMPTS} "
                           "times in a row; this change was not applied, try again")


def _request(table: str, item_key: dict, sets: Mapping[str, Any], removes: Sequence[str]) -> dict[str, Any]:
    """The UpdateItem of `sets` and `removes`; the version, when set, as #cv and :cv (for a condition)."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    assignments, removals = [], []
    for i, (name, value) in enumerate(sets.items()):
        placeholder = "cv" if name == schema.VERSION_ATTR else f"a{i}"
        names[f"#{placeholder}"], values[f":{placeholder}"] = name, value
        assignments.append(f"#{placeholder} = :{placeholder}")
    for i, name in enumerate(removes):
        names[f"#r{i}"] = name
        removals.append(f"#r{i}")
    expression = " ".join(part for part in (
        "SET " + ", ".join(assignments) if assignments else "", "REMOVE " + ", ".join(removals) if removals else "") if part)
    request: dict[str, Any] = {"TableName": table, "Key": item_key, "UpdateExpression": expression,
                               "ExpressionAttributeNames": names}
    if values:
        request["ExpressionAttributeValues"] = values
    return request


def _settle(core: "LimiterCore", request: dict[str, Any], settled: Callable[[dict | None], bool | None],
            unknown: str) -> Flow[bool]:
    """Send a write conditional on a version (so no transport resends it) until its outcome is known:
    True once it landed; after a refusal, what `settled` says of the item it returned (None: False);
    after a lost answer, what it says of the item read back: True (the write is there), False (another
    change's is), None (neither: it is sent again, and a late first one can then only fail its condition)."""
    for _ in range(STAMP_ATTEMPTS):
        try:
            yield Call("UpdateItem", request)
            return True
        except ConditionFailed as failed:
            return bool(settled(failed.item))
        except WriteOutcomeUnknown:
            response = yield Call("GetItem", {"TableName": core.table, "Key": request["Key"], "ConsistentRead": True})
            outcome = settled(response.get("Item"))
            if outcome is not None:
                return outcome
    raise WriteOutcomeUnknown(unknown)
