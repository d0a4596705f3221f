"""Every runtime operation as a flow: a generator that yields DynamoDB calls and decides from the answers.

`LimiterCore` holds what the decisions need between calls (table name, clock, caches) and no I/O.
`SyncRateLimiter` and `RateLimiter` run the same flows through a sync or an async driver.
"""

from __future__ import annotations

import random
import threading
import uuid
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from . import bucket, config, schema
from .acquire import Level, adjustment_update, bucket_update, predicted_tats, rejection, statuses, uses_idle_form
from .calls import Await, Call, ConditionFailed, Flow, Gate, Parallel, Sleep, TransactionCanceled
from .config import StoredConfig
from .errors import BucketContention, RateLimitExceeded, RateLimiterUnavailable, StorageError, ValidationError
from .limits import Limit, check_unique
from .validation import MAX_AMOUNT, check_id, check_limit_name, check_number, to_milli

NANOS = 1_000_000_000
MAX_ACQUIRE_ATTEMPTS = 8
MAX_BATCH_ROUNDS = 8
IDLE_WAIT_LIMIT = 1.0
# Transaction cancellation reasons that no retry can fix (TransactionConflict, ThrottlingError and
# ProvisionedThroughputExceeded are retried with backoff).
PERMANENT_CANCELLATIONS = frozenset({"ValidationError", "ItemCollectionSizeLimitExceeded"})


@dataclass
class LeaseState:
    """What one lease has taken, per level and limit, so adjustments and the refund are exact."""

    entity_id: str
    resource: str
    levels: tuple[Level, ...]
    consumed: list[dict[str, int]]  # thousandths taken, per level
    costs: list[dict[str, int]]  # nanoseconds added to each tat, per level
    closed: bool = False

    @property
    def limit_names(self) -> tuple[str, ...]:
        return tuple(limit.name for limit in self.levels[0].limits)


def _bounded_put(cache: dict, key: Any, value: Any, limit: int) -> None:
    """Insert, first evicting the oldest entries past `limit`: the client's memory must not grow with
    the number of entities it has ever served. Dicts keep insertion order; races only evict early."""
    if key not in cache:
        while len(cache) >= limit:
            try:
                del cache[next(iter(cache))]
            except (KeyError, StopIteration, RuntimeError):
                break  # another thread changed the cache: it stays near the limit
    cache[key] = value


def backoff(attempt: int) -> Sleep:
    # Full jitter: contending clients spread out instead of colliding again.
    return Sleep(random.uniform(0, min(0.2, 0.005 * (2**attempt))))


class LimiterCore:
    def __init__(
        self,
        table_name: str,
        *,
        clock: Callable[[], int] = time.time_ns,
        config_cache_seconds: float = 10.0,
        bucket_cache_size: int = 100_000,
        reject_cache_seconds: float = 1.0,
        idle_margin_seconds: float = 0.05,
    ) -> None:
        self.table = check_id("table_name", table_name)
        self.clock = clock
        self.config_cache_seconds = check_number("config_cache_seconds", config_cache_seconds)
        self.reject_cache_seconds = check_number("reject_cache_seconds", reject_cache_seconds)
        # See acquire.py: concurrent writers agree in one request on a near-full bucket; never admits more.
        self.idle_margin_ns = round(check_number("idle_margin_seconds", idle_margin_seconds) * NANOS)
        self.bucket_cache_size = bucket_cache_size
        self._configs: dict[tuple[str, str], tuple[float, StoredConfig]] = {}
        # The levels an acquire resolves to, by (entity, resource, limits passed), until the stored
        # configuration they come from expires: every acquire needs them, a local rejection included.
        self._levels: dict[tuple[str, str, tuple[Limit, ...] | None], tuple[float, tuple[Level, ...]]] = {}
        # Moves on each invalidation: a read begun before one must not cache what it read.
        self._config_generation = 0
        # What this client last saw of each bucket, and when (monotonic seconds). It picks the write's
        # form, and, while fresh, rejects locally: bucket state only rises with consumption, so a view
        # that rejects stays right unless another client refunds meanwhile; `reject_cache_seconds`
        # bounds that window. It never admits: admission always goes to DynamoDB.
        self._tats: dict[tuple[str, str], dict[str, int]] = {}
        self._seen: dict[tuple[str, str], float] = {}
        # Buckets whose stale view one caller is refreshing right now: the others keep rejecting from it
        # for one more window instead of all asking DynamoDB at once.
        self._refreshing: set[tuple[str, str]] = set()
        # What this client's writes in flight will leave, by bucket: a concurrent acquire in this process
        # then picks the busy form (whose writes commute) instead of racing an idle-form write.
        # Only ever used to choose a form, never to reject.
        self._pending: dict[tuple[str, str], dict[str, int]] = {}
        # Buckets with an idle-form write of this client in flight (monotonic start). Busy-form writes
        # built meanwhile would fail if they landed first, so they wait for it (one round trip at most).
        self._idle_in_flight: dict[tuple[str, str], tuple[int, float, Gate]] = {}  # (writes, latest start, gate)
        self._plan_lock = threading.Lock()  # held for microseconds, never across a request

    # -- caches ---------------------------------------------------------------------------------
    def invalidate_config(self) -> None:
        self._config_generation += 1
        self._configs.clear()
        self._levels.clear()

    def known_tats(self, entity_id: str, resource: str) -> dict[str, int]:
        return self._tats.get((entity_id, resource), {})

    def expected_tats(self, entity_id: str, resource: str) -> dict[str, int]:
        """The view, raised by what this client's writes in flight will leave: for choosing a form."""
        view = self._tats.get((entity_id, resource), {})
        pending = self._pending.get((entity_id, resource))
        if not pending:
            return view
        return {**view, **{name: max(tat, view.get(name, tat)) for name, tat in pending.items()}}

    def remember_tats(self, entity_id: str, resource: str, tats: Mapping[str, int], complete: bool = False) -> None:
        """Record what this client saw of a bucket. `complete`: `tats` is a whole item (a read, or a failed
        write's ALL_OLD), which replaces the view: a limit missing from it is missing from the bucket (a
        deleted bucket must not keep its old state here). Otherwise (the attributes an update returned,
        or a prediction) it is merged."""
        key = (entity_id, resource)
        if complete:
            view = dict(tats)
        else:
            view = dict(self._tats.get(key, {}))
            view.update(tats)
        _bounded_put(self._tats, key, view, self.bucket_cache_size)
        _bounded_put(self._seen, key, time.monotonic(), self.bucket_cache_size)

    def forget_entity(self, entity_id: str) -> None:
        """Drop what this client knows of an entity's buckets (it was deleted)."""
        for key in [key for key in list(self._tats) if key[0] == entity_id]:
            self._tats.pop(key, None)
            self._seen.pop(key, None)

    def local_rejection(
        self, levels: Sequence[Level], resource: str, amounts: Mapping[str, int], now: int
    ) -> tuple[RateLimitExceeded | None, tuple[str, str] | None]:
        """A rejection decided without a request, from views of every level fresher than the window.
        Also returns the bucket this caller must refresh (when a view is stale and nobody else is
        refreshing it): it asks DynamoDB, while concurrent callers keep rejecting for one more window."""
        if self.reject_cache_seconds <= 0:
            return None, None
        now_monotonic = time.monotonic()
        for level in levels:
            key = (level.entity_id, resource)
            seen = self._seen.get(key)
            if seen is None:
                return None, None
            age = now_monotonic - seen
            if age >= self.reject_cache_seconds:
                if key in self._refreshing and age < 2 * self.reject_cache_seconds:
                    continue  # someone is asking DynamoDB about this bucket now
                return None, key
        return rejection(levels, resource, amounts, [self.known_tats(l.entity_id, resource) for l in levels], now), None

    # -- reading configuration ------------------------------------------------------------------
    def batch_get(self, keys: Sequence[dict]) -> Flow[dict[tuple[str, str], dict]]:
        items: dict[tuple[str, str], dict] = {}
        pending: list[dict] = list(keys)
        for round_ in range(MAX_BATCH_ROUNDS):
            if not pending:
                return items
            response = yield Call(
                "BatchGetItem", {"RequestItems": {self.table: {"Keys": pending, "ConsistentRead": True}}}
            )
            for item in response.get("Responses", {}).get(self.table, []):
                items[config.key_id(item)] = item
            pending = response.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
            if pending:
                yield backoff(round_)
        raise RateLimiterUnavailable(f"BatchGetItem left {len(pending)} keys unprocessed after {MAX_BATCH_ROUNDS} rounds")

    def stored_config(self, entity_id: str, resource: str) -> Flow[StoredConfig]:
        cached = self._configs.get((entity_id, resource))
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        generation = self._config_generation
        own = config.own_keys(entity_id, resource)
        shared = config.shared_keys(resource)
        items = yield from self.batch_get([schema.meta_key(entity_id), *own, *shared])
        meta = items.get(config.key_id(schema.meta_key(entity_id)))
        entity = schema.entity_from_item(meta) if meta else None
        limits = config.first_limits(own + shared, items)
        parent_limits = None
        stored = StoredConfig(entity, limits, None)
        if stored.parent_id:
            parent_own = config.own_keys(stored.parent_id, resource)
            parent_items = yield from self.batch_get(parent_own)
            parent_limits = config.first_limits(parent_own + shared, {**items, **parent_items})
            stored = StoredConfig(entity, limits, parent_limits)
        if self.config_cache_seconds > 0 and generation == self._config_generation:
            _bounded_put(self._configs, (entity_id, resource), (time.monotonic() + self.config_cache_seconds, stored),
                         self.bucket_cache_size)
        return stored

    def levels(self, entity_id: str, resource: str, fallback: Sequence[Limit] | None) -> Flow[tuple[Level, ...]]:
        check_id("entity_id", entity_id)
        check_id("resource", resource)
        if fallback is not None:
            fallback = tuple(check_unique(fallback, "limits"))
        key = (entity_id, resource, fallback)
        cached = self._levels.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        stored = yield from self.stored_config(entity_id, resource)
        own = config.effective(stored.limits, fallback, entity_id, resource)
        levels = [Level(entity_id, own)]
        if stored.parent_id:
            names = {limit.name for limit in own}
            parent = config.effective(stored.parent_limits, fallback, stored.parent_id, resource)
            shared = tuple(limit for limit in parent if limit.name in names)
            if shared:
                levels.append(Level(stored.parent_id, shared))
        result = tuple(levels)
        config_entry = self._configs.get((entity_id, resource))
        # Only with the entry these levels came from: one stored meanwhile (limits changed, another caller
        # read them again) must not lend its later expiry to levels built from the older configuration.
        if config_entry is not None and config_entry[1] is stored:
            _bounded_put(self._levels, key, (config_entry[0], result), self.bucket_cache_size)
        return result

    # -- acquire --------------------------------------------------------------------------------
    def amounts(self, levels: Sequence[Level], consume: Any, field_name: str = "consume") -> dict[str, int]:
        # `type(...) is dict` first: the ABC check alone costs more than the rest of a local rejection.
        if not (type(consume) is dict or isinstance(consume, Mapping)) or not consume:
            raise ValidationError(field_name, "must be a non-empty mapping of limit name to amount, e.g. {'rpm': 1}")
        known = levels[0].by_name
        result: dict[str, int] = {}
        for name, amount in consume.items():
            if name not in known:
                check_limit_name(f"{field_name} key", name)
                raise ValidationError(
                    f"{field_name}[{name!r}]",
                    f"no limit named {name!r} applies to entity {levels[0].entity_id!r}; limits: {sorted(known)}",
                )
            if type(amount) in (int, float) and 0 <= amount <= MAX_AMOUNT:  # the common case, checked inline
                value = float(amount)
            else:
                value = check_number(f"{field_name}[{name!r}]", amount)
            milli = to_milli(value, field_name, name)
            for level in levels:
                limit = level.by_name.get(name)
                if limit is not None and milli > limit.capacity_milli:
                    raise ValidationError(
                        f"{field_name}[{name!r}]",
                        f"{value:g} exceeds the capacity {limit.capacity:g} of limit {name!r} of entity "
                        f"{level.entity_id!r}, so it could never be granted",
                    )
            result[name] = milli
        return result

    def acquire(self, entity_id: str, resource: str, limits: Sequence[Limit] | None, consume: Any) -> Flow[LeaseState]:
        levels = yield from self.levels(entity_id, resource, limits)
        amounts = self.amounts(levels, consume)
        refused, refresh = self.local_rejection(levels, resource, amounts, self.clock())
        if refused is not None:
            refused.decided_locally = True
            raise refused
        if refresh is None:
            return (yield from self._acquire(levels, resource, amounts))
        self._refreshing.add(refresh)
        try:
            return (yield from self._acquire(levels, resource, amounts))
        finally:
            self._refreshing.discard(refresh)

    def _acquire(self, levels: tuple[Level, ...], resource: str, amounts: dict[str, int]) -> Flow[LeaseState]:
        entity_id = levels[0].entity_id
        margin = self.idle_margin_ns
        last: Exception | None = None  # why the previous attempt did not settle it
        keys = [(level.entity_id, resource) for level in levels]
        for attempt in range(MAX_ACQUIRE_ATTEMPTS):
            while True:
                # Checking for an idle-form write in flight and registering this one must be one step,
                # or two threads could both see none and race each other.
                with self._plan_lock:
                    busy_gate = self._idle_write_in_flight(keys)
                    if busy_gate is None:
                        now = self.clock()
                        known = [self.expected_tats(level.entity_id, resource) for level in levels]
                        idle = [key for level, key, k in zip(levels, keys, known) if uses_idle_form(level, amounts, k, now)]
                        started = time.monotonic()
                        for key in idle:
                            count, _, gate = self._idle_in_flight.get(key, (0, 0.0, None))
                            self._idle_in_flight[key] = (count + 1, started, gate or Gate())
                        for level, key, k in zip(levels, keys, known):
                            predicted = predicted_tats(level, amounts, k, now, margin)
                            _bounded_put(self._pending, key, predicted, self.bucket_cache_size)
                        break
                yield Await(busy_gate, IDLE_WAIT_LIMIT)
            updates = [bucket_update(self.table, level, resource, amounts, now, k, margin) for level, k in zip(levels, known)]
            if len(levels) == 1:
                request = {**updates[0], "ReturnValues": "UPDATED_NEW", "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
                try:
                    response = yield from self._write(Call("UpdateItem", request), keys, idle)
                except ConditionFailed as failed:
                    last = failed
                    item = failed.item
                    if item is None:  # an emulator that does not return ALL_OLD
                        item = (yield from self.read_buckets((entity_id,), resource))[0]
                    tats = schema.bucket_tats(item)
                    self.remember_tats(entity_id, resource, tats, complete=True)
                    refused = rejection(levels, resource, amounts, [tats], now)
                    if refused is not None:
                        raise refused
                    continue
                self.remember_tats(entity_id, resource, schema.bucket_tats(response.get("Attributes")))
            else:
                actions = [{"Update": {**u, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}} for u in updates]
                try:
                    # The token makes a retried transaction idempotent (DynamoDB remembers it for 10 minutes).
                    yield from self._write(
                        Call("TransactWriteItems", {"TransactItems": actions, "ClientRequestToken": uuid.uuid4().hex}),
                        keys,
                        idle,
                    )
                except TransactionCanceled as canceled:
                    last = canceled
                    codes = [code for code, _ in canceled.reasons]
                    refused = [code for code in codes if code in PERMANENT_CANCELLATIONS]
                    if refused:
                        # Retrying cannot fix these, and they are not an outage: never "allowed".
                        raise StorageError(
                            f"DynamoDB refused the acquire transaction on {entity_id}/{resource}: {', '.join(codes)}",
                            refused[0],
                            canceled,
                        ) from canceled
                    if any(code not in ("None", "ConditionalCheckFailed") for code in codes) or len(codes) != len(levels):
                        yield backoff(attempt)  # a conflicting transaction on the same items, or throttling
                        continue
                    tats = []
                    for level, k, (code, item) in zip(levels, known, canceled.reasons):
                        if code == "ConditionalCheckFailed":
                            if item is None:
                                item = (yield from self.read_buckets((level.entity_id,), resource))[0]
                            level_tats = schema.bucket_tats(item)
                            self.remember_tats(level.entity_id, resource, level_tats, complete=True)
                            tats.append(level_tats)
                        else:
                            tats.append(k)
                    refused = rejection(levels, resource, amounts, tats, now)
                    if refused is not None:
                        raise refused
                    continue
                for level, k in zip(levels, known):
                    self.remember_tats(level.entity_id, resource, predicted_tats(level, amounts, k, now, margin))
            return LeaseState(
                entity_id=entity_id,
                resource=resource,
                levels=levels,
                consumed=[{l.name: amounts[l.name] for l in level.limits if amounts.get(l.name)} for level in levels],
                costs=[
                    {l.name: bucket.cost_ns(l, amounts[l.name]) for l in level.limits if amounts.get(l.name)}
                    for level in levels
                ],
            )
        if isinstance(last, TransactionCanceled):
            # Conflicting transactions or throttling past the budget: DynamoDB could not serve us.
            raise RateLimiterUnavailable(
                f"bucket {entity_id}/{resource}: the transaction was refused {MAX_ACQUIRE_ATTEMPTS} times in a row "
                f"(last: {last})",
                last,
            )
        # Not an outage (so never let through by on_unavailable="allow"): the bucket kept changing.
        raise BucketContention(
            f"bucket {entity_id}/{resource} changed under this client {MAX_ACQUIRE_ATTEMPTS} times in a row "
            f"(last: {last}); nothing was taken, try again",
            last,
        )

    def _write(self, call: Call, keys: Sequence[tuple[str, str]], idle: Sequence[tuple[str, str]]) -> Flow[Any]:
        """Send an acquire's write; if it does not land, the predictions made for it are wrong. `idle`:
        the buckets it writes in the idle form, whose waiters it releases when it is done."""
        try:
            return (yield call)
        except BaseException:
            for key in keys:
                self._pending.pop(key, None)
            raise
        finally:
            with self._plan_lock:
                for key in idle:
                    count, started, gate = self._idle_in_flight.get(key, (1, 0.0, None))
                    if count <= 1:
                        self._idle_in_flight.pop(key, None)
                        if gate is not None:
                            gate.open()
                    else:
                        self._idle_in_flight[key] = (count - 1, started, gate)

    def _idle_write_in_flight(self, keys: Sequence[tuple[str, str]]) -> Gate | None:
        """The gate of an idle-form write of this client in flight on one of these buckets, if any (a
        stuck entry is ignored after IDLE_WAIT_LIMIT, so a lost response never blocks the bucket)."""
        for key in keys:
            mark = self._idle_in_flight.get(key)
            if mark is not None and time.monotonic() - mark[1] < IDLE_WAIT_LIMIT:
                return mark[2]
        return None

    # -- adjust and refund ----------------------------------------------------------------------
    def adjust(self, lease: LeaseState, deltas: Mapping[str, Any]) -> Flow[None]:
        names = lease.limit_names
        milli: dict[str, int] = {}
        for name, delta in deltas.items():
            if name not in names:
                raise ValidationError(f"adjust[{name!r}]", f"the lease holds no limit named {name!r}; limits: {list(names)}")
            value = to_milli(check_number(f"adjust[{name!r}]", delta, allow_negative=True), "adjust", name)
            if value:
                milli[name] = value
        if lease.closed:
            raise ValidationError("lease", "was refunded when its block raised; it can no longer be adjusted")
        for name, value in milli.items():
            if lease.consumed[0].get(name, 0) + value < 0:
                raise ValidationError(
                    f"adjust[{name!r}]",
                    f"would refund more than the lease took ({lease.consumed[0].get(name, 0) / 1000:g})",
                )
        changes = []
        for index, level in enumerate(lease.levels):
            level_milli: dict[str, int] = {}
            level_costs: dict[str, int] = {}
            for limit in level.limits:
                if limit.name not in milli:
                    continue
                held = lease.consumed[index].get(limit.name, 0)
                if milli[limit.name] <= -held:
                    # This level holds less than asked back (an earlier write to it failed): give back
                    # exactly what it holds, never more, so it is never credited tokens it did not give.
                    level_milli[limit.name] = -held
                    level_costs[limit.name] = -lease.costs[index].get(limit.name, 0)
                else:
                    level_milli[limit.name] = milli[limit.name]
                    level_costs[limit.name] = bucket.cost_ns(limit, milli[limit.name])
            changes.append((level_milli, level_costs))
        yield from self._apply(lease, changes)

    def refund(self, lease: LeaseState) -> Flow[None]:
        """Give back everything the lease took. Levels already refunded are never refunded again."""
        if lease.closed:
            return
        lease.closed = True  # first, so an adjust racing the refund is refused rather than lost
        changes = [
            ({k: -v for k, v in consumed.items()}, {k: -v for k, v in costs.items()})
            for consumed, costs in zip(lease.consumed, lease.costs)
        ]
        yield from self._apply(lease, changes)

    def _apply(self, lease: LeaseState, changes: list[tuple[dict[str, int], dict[str, int]]]) -> Flow[None]:
        now = self.clock()
        work = [
            (index, milli, costs)
            for index, (milli, costs) in enumerate(changes)
            if any(milli.values()) or any(costs.values())
        ]
        calls = [
            Call("UpdateItem", adjustment_update(self.table, lease.levels[i].entity_id, lease.resource, costs, milli, now))
            for i, milli, costs in work
        ]
        if not calls:
            return
        if len(calls) == 1:
            results: list[Any] = [(yield calls[0])]
        else:
            results = yield Parallel(tuple(calls))
        failures: list[BaseException] = []
        applied: list[tuple[int, dict]] = []
        # First record what each level that succeeded now holds, so a later refund gives back exactly
        # that, whatever fails after this point; a level whose write failed keeps what it had.
        for (index, milli, costs), result in zip(work, results):
            if isinstance(result, BaseException):
                failures.append(result)
                continue
            level_consumed, level_costs = lease.consumed[index], lease.costs[index]
            for name, value in milli.items():
                level_consumed[name] = level_consumed.get(name, 0) + value
            for name, value in costs.items():
                level_costs[name] = level_costs.get(name, 0) + value
            applied.append((index, result))
        for index, result in applied:
            self.remember_tats(lease.levels[index].entity_id, lease.resource, schema.bucket_tats(result.get("Attributes")))
        if failures:
            # An access-denied on one level must not hide behind an outage on the other: on_unavailable
            # "allow" applies only when every failure is an outage.
            raise next((f for f in failures if not isinstance(f, RateLimiterUnavailable)), failures[0])

    # -- reading buckets ------------------------------------------------------------------------
    def read_buckets(self, entity_ids: Sequence[str], resource: str) -> Flow[list[dict | None]]:
        items = yield from self.batch_get([schema.bucket_key(e, resource) for e in entity_ids])
        found = [items.get(config.key_id(schema.bucket_key(e, resource))) for e in entity_ids]
        for entity_id, item in zip(entity_ids, found):
            self.remember_tats(entity_id, resource, schema.bucket_tats(item), complete=True)
        return found

    def available(self, entity_id: str, resource: str, limits: Sequence[Limit] | None) -> Flow[dict[str, float]]:
        levels = yield from self.levels(entity_id, resource, limits)
        (item,) = yield from self.read_buckets((entity_id,), resource)
        tats = schema.bucket_tats(item)
        now = self.clock()
        return {s.name: s.available for s in statuses(levels[0], resource, {}, tats, now)}

    def time_until_available(
        self, entity_id: str, resource: str, needed: Any, limits: Sequence[Limit] | None
    ) -> Flow[float]:
        levels = yield from self.levels(entity_id, resource, limits)
        amounts = self.amounts(levels, needed, "needed")
        items = yield from self.read_buckets(tuple(level.entity_id for level in levels), resource)
        now = self.clock()
        wait = 0
        for level, item in zip(levels, items):
            tats = schema.bucket_tats(item)
            for limit in level.limits:
                wait = max(wait, bucket.wait_ns(limit, tats.get(limit.name), now, amounts.get(limit.name, 0)))
        return wait / NANOS
