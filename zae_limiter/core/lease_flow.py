"""What a lease holds, and its adjustments and refund as flows: one UpdateItem per bucket it holds.

A positive adjust is a charge at the moment it is applied (`max(tat, now) + cost`, in the two condition-
split forms of acquire.py, written again from the refusal's item on a wrong guess); a give-back (a
negative adjust, the refund) subtracts what was recorded, unconditionally, and never more than the
bucket holds of this lease."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from . import bucket, schema
from .acquire import Level, Part, adjustment_update, costs_of
from .calls import Call, ConditionFailed, Flow, Parallel
from .errors import BucketContention, RateLimiterUnavailable, ValidationError
from .validation import charged_milli, check_number

if TYPE_CHECKING:
    from ..state.limiter_core import LimiterCore

MAX_ADJUST_ATTEMPTS = 8

Change = tuple[int, dict[str, int], dict[str, int]]  # (part index, thousandths, clock units)


@dataclass
class LeaseState:
    """What one lease has taken, per bucket (part) and limit, so adjustments and the refund are exact.
    Part 0 is the entity's bucket of the lease's resource; then its cascade parent's, then `also`'s."""

    parts: tuple[Part, ...]
    consumed: list[dict[str, int]]  # thousandths taken, per part
    costs: list[dict[str, int]]  # clock units added to each tat, per part
    overdrawn: tuple[str, ...] = ()  # soft limits the acquire went past
    closed: bool = False
    local: bool = False  # admitted from this client's reserves (reservoirs.py), not by a write

    @classmethod
    def taken(cls, parts: Sequence[Part], overdrawn: tuple[str, ...] = (), local: bool = False) -> "LeaseState":
        return cls(
            local=local,
            parts=tuple(parts),
            consumed=[{name: milli for name, milli in part.amounts.items() if milli and name in part.level.by_name}
                      for part in parts],
            costs=[costs_of(part.level, part.amounts) for part in parts],
            overdrawn=overdrawn,
        )

    @property
    def entity_id(self) -> str:
        return self.parts[0].level.entity_id

    @property
    def resource(self) -> str:
        return self.parts[0].resource

    @property
    def levels(self) -> tuple[Level, ...]:
        """The levels of the lease's own resource (the entity's, then its cascade parent's)."""
        return tuple(part.level for part in self.parts if part.resource == self.resource)

    @property
    def resources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(part.resource for part in self.parts))

    def indexes(self, resource: str) -> list[int]:
        return [i for i, part in enumerate(self.parts) if part.resource == resource]

    def consumed_in(self, resource: str) -> dict[str, int]:
        """What the entity's own bucket of `resource` holds of this lease."""
        return self.consumed[self.indexes(resource)[0]]


def adjust(core: "LimiterCore", lease: LeaseState, deltas: Mapping[str, Any], resource: str | None = None) -> Flow[None]:
    if resource is None:
        resource = lease.resource
    if resource not in lease.resources:
        raise ValidationError("resource", f"the lease holds no resource {resource!r}; resources: {list(lease.resources)}")
    indexes = lease.indexes(resource)
    names = tuple(limit.name for limit in lease.parts[indexes[0]].level.limits)
    milli: dict[str, int] = {}
    for name, delta in deltas.items():
        if name not in names:
            raise ValidationError(f"adjust[{name!r}]", f"the lease holds no limit named {name!r}; limits: {list(names)}")
        check_number(f"adjust[{name!r}]", delta, allow_negative=True)
        value = charged_milli(delta, "adjust", name)
        if value:
            milli[name] = value
    if lease.closed:
        raise ValidationError("lease", "the lease has ended: it was refunded when its block raised, and can no longer be adjusted")
    own = lease.consumed[indexes[0]]
    for name, value in milli.items():
        if own.get(name, 0) + value < 0:
            raise ValidationError(f"adjust[{name!r}]", f"would refund more than the lease took ({own.get(name, 0) / 1000:g})")
    changes: list[Change] = []
    for index in indexes:
        level_milli: dict[str, int] = {}
        level_costs: dict[str, int] = {}
        for limit in lease.parts[index].level.limits:
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
        changes.append((index, level_milli, level_costs))
    yield from apply(core, lease, changes)


def refund(core: "LimiterCore", lease: LeaseState) -> Flow[None]:
    """Give back everything the lease took. Buckets already refunded are never refunded again."""
    if lease.closed:
        return
    lease.closed = True  # first, so an adjust racing the refund is refused rather than lost
    changes = [
        (index, {k: -v for k, v in consumed.items()}, {k: -v for k, v in costs.items()})
        for index, (consumed, costs) in enumerate(zip(lease.consumed, lease.costs))
    ]
    yield from apply(core, lease, changes)


def _requests(core: "LimiterCore", lease: LeaseState, pending: Sequence[Change], now: int,
              views: Mapping[int, Mapping[str, int]]) -> list[Call]:
    calls = []
    for index, milli, costs in pending:
        part = lease.parts[index]
        known = views.get(index)
        if known is None:
            known = core.views.known(part.key)
        request = adjustment_update(core.table, part.level, part.resource, costs, milli, now, known)
        request["ReturnValues"] = "UPDATED_NEW"
        if "ConditionExpression" in request:
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        calls.append(Call("UpdateItem", request))
    return calls


def _apply_locally(core: "LimiterCore", lease: LeaseState, changes: Sequence[Change]) -> bool:
    """A lease admitted from reserves changes them, not the buckets, while they are live (a charge must
    fit what they hold); the usage they count moves with it."""
    if not (lease.local and core.reservoirs.enabled):
        return False
    parts = [lease.parts[index] for index, _, _ in changes]
    if not core.reservoirs.adjust(parts, [milli for _, milli, _ in changes], [costs for _, _, costs in changes]):
        return False
    for index, milli, costs in changes:
        for name, value in milli.items():
            lease.consumed[index][name] = lease.consumed[index].get(name, 0) + value
        for name, value in costs.items():
            lease.costs[index][name] = lease.costs[index].get(name, 0) + value
    return True


def _send(core: "LimiterCore", lease: LeaseState, pending: Sequence[Change]) -> Flow[list[Any]]:
    """One attempt: the pending changes written in parallel; a response or an exception per change.
    A charge is written in the idle or the busy form, like an acquire, so it takes its turn in the
    bucket's idle-form queue (bucket_views.py). Without it, 32 concurrent adjusts of one bucket near
    full each guessed the form from a state the others kept changing (measured: 2.4-2.6 requests per
    acquire + adjust, and adjusts failing with BucketContention)."""
    charged = [index for index, _, costs in pending if any(cost > 0 for cost in costs.values())]
    charges = [_charge(lease, pending, index) for index in charged]
    plan = (yield from core.views.plan(charges, core.clock)) if charges else None
    try:
        now = plan.now if plan is not None else core.clock()
        calls = _requests(core, lease, pending, now, dict(zip(charged, plan.forms)) if plan is not None else {})
        if len(calls) > 1:
            return (yield Parallel(tuple(calls)))
        try:
            return [(yield calls[0])]
        except ConditionFailed as failed:
            return [failed]
    finally:
        if plan is not None:
            core.views.done(plan, [part.key for part in charges])


def _charge(lease: LeaseState, pending: Sequence[Change], index: int) -> Part:
    """The part of an adjustment that charges a bucket (its positive amounts), to plan its write."""
    part = lease.parts[index]
    milli, costs = next((milli, costs) for i, milli, costs in pending if i == index)
    return Part(part.level, part.resource, {name: value for name, value in milli.items() if costs.get(name, 0) > 0})


def apply(core: "LimiterCore", lease: LeaseState, changes: Sequence[Change]) -> Flow[None]:
    """Write each bucket's change, in parallel. A bucket whose form was guessed wrong is written again
    from the item its refusal returned, so a charge always lands at `max(tat, now) + cost`, and nothing
    is ever applied twice."""
    pending = [(index, milli, costs) for index, milli, costs in changes if any(milli.values()) or any(costs.values())]
    if pending and _apply_locally(core, lease, pending):
        return
    failures: list[BaseException] = []
    for _ in range(MAX_ADJUST_ATTEMPTS):
        if not pending:
            break
        results = yield from _send(core, lease, pending)
        retry = []
        for (index, milli, costs), result in zip(pending, results):
            part = lease.parts[index]
            if isinstance(result, ConditionFailed):
                # The view picked the wrong form: nothing was written; write again from the item.
                if result.item is None:  # an emulator that does not return ALL_OLD
                    yield from core.read_buckets((part.level.entity_id,), part.resource)
                else:
                    core.views.remember(part.key, schema.bucket_tats(result.item), complete=True)
                retry.append((index, milli, costs))
                continue
            if isinstance(result, BaseException):
                failures.append(result)
                continue
            # Record what the bucket now holds first, so a later refund gives back exactly that,
            # whatever fails after this point; a bucket whose write failed keeps what it had.
            held, held_costs = lease.consumed[index], lease.costs[index]
            for name, value in milli.items():
                held[name] = held.get(name, 0) + value
            for name, value in costs.items():
                held_costs[name] = held_costs.get(name, 0) + value
            core.views.remember(part.key, schema.bucket_tats(result.get("Attributes")))
        pending = retry
    if pending:
        failures.append(BucketContention(
            f"bucket {lease.entity_id}/{lease.resource} changed under this client {MAX_ADJUST_ATTEMPTS} "
            "times in a row; the adjustment was not applied there"
        ))
    if failures:
        # An access-denied on one bucket must not hide behind an outage on another: on_unavailable
        # "allow" applies only when every failure is an outage.
        raise next((f for f in failures if not isinstance(f, RateLimiterUnavailable)), failures[0])
