"""Acquire and adjust decisions: building the conditional bucket writes and reading the answers. Pure functions.

One acquire is one UpdateItem per level (the entity, and its parent under cascade, then in one
TransactWriteItems). A token bucket takes `cost` at `now` by moving its theoretical arrival time to
`max(tat, now) + cost`; an update expression cannot compute `max`, so each limit is written in one of two
forms, chosen from what the client last saw of the bucket:
  busy (tat >= now):  condition tat >= now AND tat <= now + tau - cost;   SET tat = tat + cost
  idle (tat <  now):  condition tat absent OR tat < now;                  SET tat = now + cost
The two conditions split every state in two, so a wrong guess can never admit wrongly or charge the wrong
amount: it fails the condition, the answer carries the item as it stands (ALL_OLD), and the client either
rejects from it (no further request) or writes again with the right forms. Both forms leave exactly
`max(tat, now) + cost`: the state of a textbook token bucket (DESIGN section 13), with no margin.

A positive adjust is a charge at the moment it is applied, in the same two forms without the capacity
check (it is never refused and may drive the bucket into debt). A refund subtracts its recorded cost
unconditionally: a tat that falls below `now` is a full bucket, which is the cap at capacity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

from . import bucket, schema
from .errors import LimitStatus, RateLimitExceeded
from .limits import Limit

NANOS = 1_000_000_000


@dataclass(frozen=True)
class Level:
    """One entity's share of an acquire: its bucket item and the limits that apply there."""

    entity_id: str
    limits: tuple[Limit, ...]

    by_name: ClassVar[dict[str, Limit]]  # derived: the limits by name, read on every acquire

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {limit.name: limit for limit in self.limits})


def bucket_update(
    table: str,
    level: Level,
    resource: str,
    amounts: Mapping[str, int],
    now: int,
    known: Mapping[str, int],
) -> dict[str, Any]:
    """The conditional UpdateItem (without Return* options) that takes `amounts` (thousandths) at `now`,
    each limit in the form `known` (the client's view of the bucket) picks."""
    names: dict[str, str] = {"#n": schema.ACQUIRES}
    # `:now` is added only by the limits that use it: DynamoDB refuses a request carrying a value that no
    # expression uses, which an acquire taking 0 from every limit would otherwise be.
    values: dict[str, Any] = {":one": schema.n(1)}
    conditions: list[str] = []
    sets: list[str] = []
    adds: list[str] = ["#n :one"]
    for i, limit in enumerate(level.limits):
        b = f"#b{i}"
        names[b] = schema.tat_attr(limit.name)
        milli = amounts.get(limit.name, 0)
        tau = bucket.tau_ns(limit)
        if milli == 0:
            # Nothing taken from this limit, but a bucket in debt still refuses the call.
            conditions.append(f"(attribute_not_exists({b}) OR {b} <= :m{i})")
            values[f":m{i}"] = schema.n(now + tau)
            continue
        cost = bucket.cost_ns(limit, milli)
        tat = known.get(limit.name)
        if tat is not None and tat >= now:
            # Busy: additions commute, so concurrent busy-form writes succeed in any order.
            conditions.append(f"({b} >= :now AND {b} <= :m{i})")
            values[":now"] = schema.n(now)
            values[f":m{i}"] = schema.n(now + tau - cost)
            sets.append(f"{b} = {b} + :k{i}")
            values[f":k{i}"] = schema.n(cost)
        else:
            conditions.append(f"(attribute_not_exists({b}) OR {b} < :now)")
            values[":now"] = schema.n(now)
            sets.append(f"{b} = :k{i}")
            values[f":k{i}"] = schema.n(now + cost)
        c = f"#c{i}"
        names[c] = schema.counter_attr(limit.name)
        adds.append(f"{c} :u{i}")
        values[f":u{i}"] = schema.n(milli)
    expression = ("SET " + ", ".join(sets) + " " if sets else "") + "ADD " + ", ".join(adds)
    return {
        "TableName": table,
        "Key": schema.bucket_key(level.entity_id, resource),
        "UpdateExpression": expression,
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def uses_idle_form(level: Level, amounts: Mapping[str, int], known: Mapping[str, int], now: int) -> bool:
    """Whether `bucket_update` writes some limit of `level` in the idle form (its writes do not commute)."""
    for limit in level.limits:
        if amounts.get(limit.name, 0):
            tat = known.get(limit.name)
            if tat is None or tat < now:
                return True
    return False


def adjustment_update(
    table: str,
    entity_id: str,
    resource: str,
    costs: Mapping[str, int],
    milli: Mapping[str, int],
    now: int,
    known: Mapping[str, int],
) -> dict[str, Any]:
    """The UpdateItem (without Return* options) moving each limit's tat by `costs` (ns) and its counter
    by `milli`. A charge (cost > 0) lands at `now` as on a token bucket, in the form `known` picks, with
    the condition that makes a wrong guess fail; a refund (cost < 0) needs no condition."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    conditions, sets, adds = [], [], []
    for i, name in enumerate(costs):
        b = f"#b{i}"
        names[b] = schema.tat_attr(name)
        names[f"#c{i}"] = schema.counter_attr(name)
        cost = costs[name]
        values[":now"] = schema.n(now)
        if cost <= 0:
            sets.append(f"{b} = if_not_exists({b}, :now) - :k{i}")
            values[f":k{i}"] = schema.n(-cost)
        elif known.get(name) is not None and known[name] >= now:
            conditions.append(f"{b} >= :now")
            sets.append(f"{b} = {b} + :k{i}")
            values[f":k{i}"] = schema.n(cost)
        else:
            conditions.append(f"(attribute_not_exists({b}) OR {b} < :now)")
            sets.append(f"{b} = :k{i}")
            values[f":k{i}"] = schema.n(now + cost)
        adds.append(f"#c{i} :u{i}")
        values[f":u{i}"] = schema.n(milli[name])
    request = {
        "TableName": table,
        "Key": schema.bucket_key(entity_id, resource),
        "UpdateExpression": "SET " + ", ".join(sets) + " ADD " + ", ".join(adds),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    if conditions:
        request["ConditionExpression"] = " AND ".join(conditions)
    return request


def level_admits(level: Level, amounts: Mapping[str, int], tats: Mapping[str, int], now: int) -> bool:
    return all(bucket.admits(limit, tats.get(limit.name), now, amounts.get(limit.name, 0)) for limit in level.limits)


def statuses(
    level: Level, resource: str, amounts: Mapping[str, int], tats: Mapping[str, int], now: int
) -> list[LimitStatus]:
    result = []
    for limit in level.limits:
        tat = tats.get(limit.name)
        milli = amounts.get(limit.name, 0)
        result.append(
            LimitStatus(
                entity_id=level.entity_id,
                resource=resource,
                name=limit.name,
                available=bucket.available(limit, tat, now),
                requested=milli / 1000,
                capacity=limit.capacity,
                retry_after_seconds=bucket.wait_ns(limit, tat, now, milli) / NANOS,
            )
        )
    return result


def rejection(
    levels: Sequence[Level], resource: str, amounts: Mapping[str, int], tats: Sequence[Mapping[str, int]], now: int
) -> RateLimitExceeded | None:
    """The rejection for these bucket states, or None when every level would admit."""
    if all(level_admits(level, amounts, t, now) for level, t in zip(levels, tats)):
        return None
    found: list[LimitStatus] = []
    for level, t in zip(levels, tats):
        found.extend(statuses(level, resource, amounts, t, now))
    return RateLimitExceeded(found)


def predicted_tats(level: Level, amounts: Mapping[str, int], known: Mapping[str, int], now: int) -> dict[str, int]:
    """What a successful write left, as far as this client can tell without reading it back: exact for
    idle-form limits, a lower bound for busy-form ones (other clients may have taken more)."""
    result = dict(known)
    for limit in level.limits:
        milli = amounts.get(limit.name, 0)
        if milli:
            tat = known.get(limit.name)
            if tat is None or tat < now:  # written in the idle form (the same test as bucket_update)
                result[limit.name] = now + bucket.cost_ns(limit, milli)
            else:
                result[limit.name] = tat + bucket.cost_ns(limit, milli)
    return result
