"""Acquire decisions: building the conditional bucket writes and reading the answers. Pure functions.

One acquire is one UpdateItem per level (the entity, and its parent under cascade, then in one
TransactWriteItems). The update cannot compute `max(tat, now)`, so each limit is written in one of two
forms, chosen from what the client last saw of the bucket:
  busy (tat >= now):  condition tat >= now AND tat <= now + tau - cost;   SET tat = tat + cost
  idle (tat <  now):  condition tat absent OR tat < now;                  SET tat = now + cost
The two conditions split every state in two, so a wrong guess can never admit wrongly: it fails the
condition, the answer carries the item as it stands (ALL_OLD), and the client either rejects from it
(no further request) or writes again with the right forms.

The idle form takes a margin: it accepts `tat < now + margin` and writes `tat = now + margin + cost`.
Concurrent writers read their clocks before their requests land, so on a bucket near full another
writer's `tat` is often a little after this writer's `now`; without the margin that write fails and is
sent again. Where the two forms overlap (`now <= tat < now + margin`) the idle form charges at least what
the busy form would (`now + margin + cost >= tat + cost`), so the margin can only hold back refill (at
most `margin` of it, right after a full bucket is first taken from), never admit more: in the overlap
the idle form also checks `tat <= now + tau - cost`, as the busy form does (without it, a client with no
view of a bucket that had almost refilled took up to `margin` of refill it did not have).
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
    margin: int = 0,
) -> dict[str, Any]:
    """The conditional UpdateItem (without Return* options) that takes `amounts` (thousandths) at `now`;
    `margin`: the idle form's tolerance in nanoseconds (see the module's docstring)."""
    names: dict[str, str] = {"#n": schema.ACQUIRES}
    # `:now` is added only by the limits that use it: DynamoDB refuses a request carrying a value that no
    # expression uses, which an acquire taking 0 from every limit would otherwise be.
    values: dict[str, Any] = {":one": schema.n(1)}
    idle_before = now + margin
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
        elif margin:
            # Within the margin (now <= tat < now + margin) the bucket is not quite full: the idle form
            # must still check that it holds the cost, or it would admit up to `margin` of refill early.
            conditions.append(f"(attribute_not_exists({b}) OR {b} < :now OR ({b} < :idle AND {b} <= :m{i}))")
            values[":now"] = schema.n(now)
            values[":idle"] = schema.n(idle_before)
            values[f":m{i}"] = schema.n(now + tau - cost)
            sets.append(f"{b} = :k{i}")
            values[f":k{i}"] = schema.n(idle_before + cost)
        else:
            conditions.append(f"(attribute_not_exists({b}) OR {b} < :idle)")
            values[":idle"] = schema.n(idle_before)
            sets.append(f"{b} = :k{i}")
            values[f":k{i}"] = schema.n(idle_before + cost)
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
    table: str, entity_id: str, resource: str, costs: Mapping[str, int], milli: Mapping[str, int], now: int
) -> dict[str, Any]:
    """Unconditional UpdateItem moving each limit's tat by `costs` and its counter by `milli`."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {":now": schema.n(now)}
    sets, adds = [], []
    for i, name in enumerate(costs):
        names[f"#b{i}"] = schema.tat_attr(name)
        names[f"#c{i}"] = schema.counter_attr(name)
        sets.append(f"#b{i} = if_not_exists(#b{i}, :now) + :k{i}")
        adds.append(f"#c{i} :u{i}")
        values[f":k{i}"] = schema.n(costs[name])
        values[f":u{i}"] = schema.n(milli[name])
    return {
        "TableName": table,
        "Key": schema.bucket_key(entity_id, resource),
        "UpdateExpression": "SET " + ", ".join(sets) + " ADD " + ", ".join(adds),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnValues": "UPDATED_NEW",
    }


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


def predicted_tats(
    level: Level, amounts: Mapping[str, int], known: Mapping[str, int], now: int, margin: int = 0
) -> dict[str, int]:
    """What a successful write left, as far as this client can tell without reading it back: exact for
    idle-form limits, a lower bound for busy-form ones (other clients may have taken more)."""
    result = dict(known)
    for limit in level.limits:
        milli = amounts.get(limit.name, 0)
        if milli:
            tat = known.get(limit.name)
            if tat is None or tat < now:  # written in the idle form (the same test as bucket_update)
                result[limit.name] = now + margin + bucket.cost_ns(limit, milli)
            else:
                result[limit.name] = tat + bucket.cost_ns(limit, milli)
    return result
