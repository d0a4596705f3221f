"""The acquire protocol as a flow: resolve the levels, decide locally when it can, write, and read the
answer. One conditional UpdateItem for one bucket, one TransactWriteItems for several (cascade, `also`).
The requests and the meaning of each answer are the pure functions of acquire.py."""

from __future__ import annotations

import sys
import uuid
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from . import bucket, schema
from .acquire import Part, amounts, bucket_update, config_changed, overdrawn_soft, rejection
from .answers import WriteOutcomeUnknown
from .calls import Await, Call, ConditionFailed, Flow, TransactionCanceled
from .errors import BucketContention, RateLimiterUnavailable, StorageError, ValidationError
from .lease_flow import LeaseState
from .limits import Limit
from .validation import check_id

if TYPE_CHECKING:
    from ..state.limiter_core import LimiterCore

MAX_ACQUIRE_ATTEMPTS = 8
# With reservoirs: how often, and how long, an acquire the reserve cannot serve waits for a write in
# flight that adds to it, before it writes itself.
MAX_REFILL_WAITS = 8
REFILL_WAIT_LIMIT = 1.0
# DynamoDB's limit on the items of one transaction.
MAX_TRANSACTION_ITEMS = 100
# Transaction cancellation reasons that no retry can fix (TransactionConflict, ThrottlingError and
# ProvisionedThroughputExceeded are retried with backoff).
PERMANENT_CANCELLATIONS = frozenset({"ValidationError", "ItemCollectionSizeLimitExceeded"})
# Cancellations that mean the buckets changed under the acquire, not that DynamoDB is unavailable: past
# the attempts they are BucketContention (never let through by on_unavailable="allow").
CONTENTION = frozenset({"None", "ConditionalCheckFailed", "TransactionConflict"})
_NONE: frozenset[str] = frozenset()


class ConfigChanged(Exception):
    """A write was refused because the configuration it was built from changed: read it again."""


def resolve(core: "LimiterCore", entity_id: str, resource: str, limits: Sequence[Limit] | None, consume: Any,
            also: Mapping[str, Any] | None, reuse: bool = True) -> Flow[list[Part]]:
    """Every bucket the acquire writes, with what it takes there: the resource's levels, then each
    resource of `also` (one lease across resources, all or nothing). `reuse`: an expired configuration
    of an entity whose bucket this client knows may be used as it is, its version checked by the write."""

    def levels_of(res: str) -> Flow[tuple[Any, ...]]:
        usable = (lambda owner: (owner, res) in core.views) if reuse else (lambda owner: False)
        return core.configs.resolve(entity_id, res, limits, usable)

    levels = yield from levels_of(resource)
    parts = [Part(level, resource, taken) for taken in [amounts(levels, consume)] for level in levels]
    if also is None:
        return parts
    if not isinstance(also, Mapping) or not also:
        raise ValidationError("also", "must be a non-empty mapping of resource to consume, e.g. {'embeddings': {'rpm': 1}}")
    for other, consume_there in also.items():
        check_id("also key", other)
        if other == resource:
            raise ValidationError(f"also[{other!r}]", "names the acquire's own resource; put its amounts in consume")
        levels = yield from levels_of(other)
        taken = amounts(levels, consume_there, f"also[{other!r}]")
        parts.extend(Part(level, other, taken) for level in levels)
    if len(parts) > MAX_TRANSACTION_ITEMS:
        raise ValidationError(
            "also", f"the acquire writes {len(parts)} buckets (cascade included); one transaction holds at most "
            f"{MAX_TRANSACTION_ITEMS}",
        )
    return parts


def acquire(core: "LimiterCore", entity_id: str, resource: str, limits: Sequence[Limit] | None, consume: Any,
            also: Mapping[str, Any] | None = None) -> Flow[LeaseState]:
    parts = yield from resolve(core, entity_id, resource, limits, consume, also)
    try:
        return (yield from _decide_and_write(core, parts))
    except ConfigChanged:
        # The configuration changed after this client read it: read it and decide again, once.
        parts = yield from resolve(core, entity_id, resource, limits, consume, also, reuse=False)
        return (yield from _decide_and_write(core, parts))


def _decide_and_write(core: "LimiterCore", parts: list[Part]) -> Flow[LeaseState]:
    refused, refresh = core.views.local_rejection(parts, core.clock())
    if refused is not None:
        raise refused
    if core.reservoirs.enabled:
        for waits in range(MAX_REFILL_WAITS):
            if core.reservoirs.take(parts, observe=waits == 0):
                return LeaseState.taken(parts, local=True)  # admitted from this client's reserves: no request
            waiter = core.reservoirs.wait_for_refill(parts)
            if waiter is None:
                break
            try:
                yield Await(waiter.gate, REFILL_WAIT_LIMIT)  # a write in flight adds to the reserve
            except BaseException:
                core.reservoirs.abandon(waiter)
                raise
            served = core.reservoirs.served(waiter)
            if served:
                return LeaseState.taken(parts, local=True)  # admitted by that refill when it landed
            if served is None:
                break  # handed the claim of the next refill: this one writes it
    if refresh is not None:
        core.views.refreshing.add(refresh)
    try:
        return (yield from write(core, parts))
    finally:
        if refresh is not None:
            core.views.refreshing.discard(refresh)
        if core.reservoirs.enabled:
            core.reservoirs.written(parts)  # a refill of it kept to be sent again, and not, ends


def write(core: "LimiterCore", parts: Sequence[Part]) -> Flow[LeaseState]:
    """Write the parts until they are admitted or refused. A wrong guess of a write's form fails its
    condition; the refusal's item then decides (a rejection, with no further request) or the next
    attempt writes the right forms. Under a transaction, soft limits are first written with their
    capacity checked, which is how the client learns which ones the take overdraws (they are then
    written unchecked); a single UpdateItem learns it from the item it returns."""
    last: Exception | None = None  # why the previous attempt did not settle it
    keys = [part.key for part in parts]
    single = len(parts) == 1
    checked_soft = [
        _NONE if single or not part.level.has_soft else frozenset(limit.name for limit in part.level.limits if limit.soft)
        for part in parts
    ]
    overdrawn: set[str] = set()
    reserving = core.reservoirs.enabled
    # Acquires that may share a write with others queued on their bucket (state/combined_writes.py).
    combinable = single and not reserving and not parts[0].level.has_soft
    for attempt in range(MAX_ACQUIRE_ATTEMPTS):
        plan = yield from core.views.plan(parts, core.clock, combine=combinable and attempt == 0)
        if plan.riding is not None:  # joined another acquire's batch: its write is this one's
            if (yield from _ride(core, parts, plan.riding)):
                return LeaseState.taken(parts)
            last = BucketContention("the combined write was refused")
            continue
        now = plan.now
        carries = ([core.reservoirs.carry(part, view, now, alone=attempt > 0) for part, view in zip(parts, plan.known)]
                   if reserving else [None] * len(parts))
        landed = refused = False
        refusal = None  # a refused write's item, for the batch's members
        updates = None  # built: from here on the write may be sent
        try:
            updates = _updates(core, parts, plan, checked_soft, carries)
            if single:
                tats = yield from _write_one(core, parts[0], updates[0], now)
                overdrawn.update(tats)
            else:
                yield from _write_many(core, parts, plan, updates)
            landed = True
        except ConditionFailed as failed:
            last, refused, refusal = failed, True, failed.item
            yield from _decide(core, parts, [failed.item], [0], plan.known, now)
            continue
        except TransactionCanceled as canceled:
            last, refused = canceled, True
            yield from _settle_cancellation(core, parts, canceled, plan.known, now, attempt, checked_soft, overdrawn)
            continue
        finally:
            core.views.done(plan, keys)
            if reserving:
                _settle_carries(core, parts, carries, landed, sys.exc_info()[1])
            if plan.batch is not None:
                # Never built, so never sent: the members write on their own.
                core.views.settle_batch(plan.batch, landed, refused or updates is None, sys.exc_info()[1], refusal, now)
        return LeaseState.taken(parts, tuple(sorted(overdrawn)))
    raise _gave_up(keys[0], last)


def _ride(core: "LimiterCore", parts: Sequence[Part], batch: Any) -> Flow[bool]:
    """Wait for the write of the batch this acquire joined: True admitted; False, refused as a whole,
    to write on its own, after deciding from the refusal's item as its own refused write would (a
    rejection is raised with no further request)."""
    try:
        admitted = yield from batch.ride()
    except BaseException:
        core.views.leave_batch(batch, parts[0])
        raise
    if not admitted and batch.refusal is not None:
        yield from _decide(core, parts, [batch.refusal], [0], [{}], batch.now)
    return admitted


def _updates(core: "LimiterCore", parts: Sequence[Part], plan: Any, checked_soft: list[frozenset[str]],
             carries: list[Any]) -> list[dict[str, Any]]:
    if plan.combined is not None:  # the batch's summed amounts, each member charged its own cost
        combined, batch = plan.combined, plan.batch
        return [bucket_update(core.table, combined.level, combined.resource, combined.amounts, plan.now, plan.forms[0],
                              costs=batch.costs, acquires=batch.members)]
    return [
        bucket_update(core.table, part.level, part.resource, part.amounts, plan.now, view, soft, carry)
        for part, view, soft, carry in zip(parts, plan.forms, checked_soft, carries)
    ]


def _settle_carries(core: "LimiterCore", parts: Sequence[Part], carries: list[Any], landed: bool,
                    error: BaseException | None) -> None:
    """Tell the reservoirs how the write that carried their refills ended."""
    for part, carry in zip(parts, carries):
        if carry is None:
            continue
        if landed:
            core.reservoirs.landed(part, carry)
        else:  # refused (nothing applied), or lost on the way (it may have been)
            core.reservoirs.failed(part, carry, applied_maybe=isinstance(error, WriteOutcomeUnknown))


def _gave_up(key: tuple[str, str], last: Exception | None) -> Exception:
    """Why an acquire stopped after MAX_ACQUIRE_ATTEMPTS attempts."""
    entity_id, resource = key
    if isinstance(last, TransactionCanceled) and any(code not in CONTENTION for code, _ in last.reasons):
        # Throttling past the budget: DynamoDB could not serve us.
        return RateLimiterUnavailable(
            f"bucket {entity_id}/{resource}: the transaction was refused {MAX_ACQUIRE_ATTEMPTS} times in a row "
            f"(last: {last})",
            last,
        )
    # Not an outage (so never let through by on_unavailable="allow"): the bucket kept changing.
    return BucketContention(
        f"bucket {entity_id}/{resource} changed under this client {MAX_ACQUIRE_ATTEMPTS} times in a row "
        f"(last: {last}); nothing was taken, try again",
        last,
    )


def _write_one(core: "LimiterCore", part: Part, update: dict[str, Any], now: int) -> Flow[list[str]]:
    """The single-bucket acquire: one conditional UpdateItem. Returns the soft limits it overdrew, read
    from the item it returns (all of it when the level has soft limits, which need the whole state)."""
    has_soft = part.level.has_soft
    update["ReturnValues"] = "ALL_NEW" if has_soft else "UPDATED_NEW"  # the update is this write's own
    if "ConditionExpression" in update:
        update["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    response = yield Call("UpdateItem", update)
    after = schema.bucket_tats(response.get("Attributes"))
    core.views.remember(part.key, after, complete=has_soft)
    return overdrawn_soft(part.level, part.amounts, after, after, now) if has_soft else []


def _write_many(core: "LimiterCore", parts: Sequence[Part], plan: Any, updates: list[dict[str, Any]]) -> Flow[None]:
    actions = [
        {"Update": {**u, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"} if "ConditionExpression" in u else u}
        for u in updates
    ]
    # The token makes a resent transaction idempotent (DynamoDB remembers it for 10 minutes).
    yield Call("TransactWriteItems", {"TransactItems": actions, "ClientRequestToken": uuid.uuid4().hex})
    for part, predicted in zip(parts, plan.predictions):
        core.views.remember(part.key, predicted)


def _decide(core: "LimiterCore", parts: Sequence[Part], items: list[dict | None], indexes: list[int],
            known: list[dict[str, int]], now: int) -> Flow[list[dict[str, int]]]:
    """The parts' states after a refusal (the refused ones from their returned items, the others as
    last seen): raise the rejection if a hard limit lacks its amount, else return them."""
    tats = list(known)
    for index, item in zip(indexes, items):
        part = parts[index]
        if config_changed(part.level, item):
            core.configs.forget(*part.key)
            raise ConfigChanged()
        if item is None:  # an emulator that does not return ALL_OLD
            item = (yield from core.read_buckets((part.level.entity_id,), part.resource))[0]
        tats[index] = schema.bucket_tats(item)
        core.views.refused(part.key, tats[index], known[index])
    refused = rejection(parts, tats, now)
    if refused is not None:
        raise refused
    return tats


def _settle_cancellation(core: "LimiterCore", parts: Sequence[Part], canceled: TransactionCanceled,
                         known: list[dict[str, int]], now: int, attempt: int, checked_soft: list[frozenset[str]],
                         overdrawn: set[str]) -> Flow[None]:
    """What a cancelled transaction means: a permanent refusal (StorageError), contention (back off before
    the next attempt), or conditions that failed, which decide: a rejection (raised), soft limits found
    overdrawn (written unchecked from now on), or a wrong guess of a form."""
    codes = [code for code, _ in canceled.reasons]
    permanent = [code for code in codes if code in PERMANENT_CANCELLATIONS]
    entity_id, resource = parts[0].key
    if permanent:
        # Retrying cannot fix these, and they are not an outage: never "allowed".
        raise StorageError(
            f"DynamoDB refused the acquire transaction on {entity_id}/{resource}: {', '.join(codes)}",
            permanent[0],
            canceled,
        ) from canceled
    if any(code not in ("None", "ConditionalCheckFailed") for code in codes) or len(codes) != len(parts):
        yield core.backoff(attempt)  # a conflicting transaction on the same items, or throttling
        return
    failed = [i for i, code in enumerate(codes) if code == "ConditionalCheckFailed"]
    tats = yield from _decide(core, parts, [canceled.reasons[i][1] for i in failed], failed, known, now)
    for index, part in enumerate(parts):
        lacking = {
            limit.name for limit in part.level.limits
            if limit.name in checked_soft[index]
            and not bucket.admits(limit, tats[index].get(limit.name), now, part.amounts.get(limit.name, 0))
        }
        if lacking:
            checked_soft[index] = checked_soft[index] - lacking
            overdrawn.update(lacking)
