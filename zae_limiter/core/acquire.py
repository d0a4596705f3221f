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

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from . import bucket, calendar_periods, schema
from .errors import LimitStatus, RateLimitExceeded, ValidationError
from .limits import Limit
from .validation import MAX_AMOUNT, charged_milli, check_limit_name, check_number

NANOS = 1_000_000_000
_NOTHING: Mapping[str, int] = {}  # no reserve and no usage to carry (never written to)


# The limits by name, one dict per distinct tuple of limits: a client serving many entities under the
# same limits keeps one copy, not one per entity (a third of a cached entity's memory, measured).
_BY_NAME: dict[tuple[Limit, ...], dict[str, Limit]] = {}
_BY_NAME_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Level:
    """One entity's share of an acquire: its bucket item and the limits that apply there."""

    entity_id: str
    limits: tuple[Limit, ...]
    # The version (`cv`) of the configuration these limits come from, which each write of the level
    # carries (config_cache.py); `stale`: that configuration was not read again after it expired, so the
    # write also requires the bucket to exist (a bucket created meanwhile carries no version of it).
    version: int = 0
    stale: bool = False
    by_name: dict[str, Limit] = field(init=False, repr=False, compare=False)  # read on every acquire
    has_soft: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = _BY_NAME.get(self.limits)
        if by_name is None:
            if len(_BY_NAME) >= _BY_NAME_SIZE:
                _BY_NAME.clear()  # rare (that many distinct sets of limits): start again
            by_name = _BY_NAME[self.limits] = {limit.name: limit for limit in self.limits}
        object.__setattr__(self, "by_name", by_name)
        object.__setattr__(self, "has_soft", any(limit.soft for limit in self.limits))


class Part:
    """One bucket an acquire writes: a level of one resource, and the thousandths it takes there.
    Read-only by convention; a plain slotted class because every acquire makes one per bucket and reads
    its key several times (a frozen dataclass pays a setattr per field)."""

    __slots__ = ("level", "resource", "amounts", "key")

    def __init__(self, level: Level, resource: str, amounts: Mapping[str, int]) -> None:
        self.level, self.resource, self.amounts = level, resource, amounts
        self.key: tuple[str, str] = (level.entity_id, resource)

    def __repr__(self) -> str:
        return f"Part({self.level!r}, {self.resource!r}, {self.amounts!r})"


def costs_of(level: Level, amounts: Mapping[str, int]) -> dict[str, int]:
    """Clock units each limit of `level` is charged for `amounts` (thousandths), rounded in its favour:
    what a lease records, and what a combined write charges for each of its members."""
    limits = level.by_name
    return {name: bucket.cost_ns(limits[name], milli) for name, milli in amounts.items() if milli and name in limits}


def amounts(levels: Sequence[Level], consume: Any, field_name: str = "consume") -> dict[str, int]:
    """`consume` checked against the levels it applies to, in thousandths. Soft limits take amounts
    beyond their capacity (they never refuse); hard limits refuse such an amount as bad input: it could
    never be granted."""
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
        if not (type(amount) in (int, float) and 0 <= amount <= MAX_AMOUNT):  # the common case, checked inline
            check_number(f"{field_name}[{name!r}]", amount)
        milli = charged_milli(amount, field_name, name)
        for level in levels:
            limit = level.by_name.get(name)
            if limit is not None and not limit.soft and milli > limit.capacity_milli:
                raise ValidationError(
                    f"{field_name}[{name!r}]",
                    f"{milli / 1000:g} exceeds the capacity {limit.capacity:g} of limit {name!r} of entity "
                    f"{level.entity_id!r}, so it could never be granted",
                )
        result[name] = milli
    return result


def _clock_value(limit: Limit, index: int, now: int, values: dict[str, Any]) -> str:
    """The placeholder of this limit's clock (bucket.clock): `:now` for rate limits, one of its own for a
    quota (its period's start). Added to `values` only when used: DynamoDB refuses a request carrying a
    value that no expression uses."""
    if limit.every is None:
        values[":now"] = schema.n(now)
        return ":now"
    values[f":q{index}"] = schema.n(bucket.clock(limit, now))
    return f":q{index}"


class _Update:
    """The parts of one UpdateItem as it is built (every acquire builds one per bucket)."""

    __slots__ = ("names", "values", "conditions", "sets", "adds")

    def __init__(self, names: dict[str, str], values: dict[str, Any], adds: list[str]) -> None:
        self.names, self.values, self.adds = names, values, adds
        self.conditions: list[str] = []
        self.sets: list[str] = []

    def request(self, table: str, key: dict) -> dict[str, Any]:
        return {
            "TableName": table,
            "Key": key,
            "UpdateExpression": "SET " + ", ".join(self.sets) + " ADD " + ", ".join(self.adds),
            "ConditionExpression": " AND ".join(self.conditions),
            "ExpressionAttributeNames": self.names,
            "ExpressionAttributeValues": self.values,
        }


def bucket_update(
    table: str,
    level: Level,
    resource: str,
    amounts: Mapping[str, int],
    now: int,
    known: Mapping[str, int],
    checked_soft: frozenset[str] = frozenset(),
    carry: Any = None,
    costs: Mapping[str, int] | None = None,
    acquires: int = 1,
) -> dict[str, Any]:
    """The conditional UpdateItem (without Return* options) that takes `amounts` (thousandths) at `now`,
    each limit in the form `known` (the client's view of the bucket) picks. A soft limit is charged
    without the capacity check (it never refuses) unless its name is in `checked_soft` (a transaction
    learns that way which soft limits a take overdraws). `carry` (state/reservoirs.py): the reserve the
    write adds (`target`, in clock units) and the usage admitted locally that it counts. A combined
    write (state/combined_writes.py) gives `costs`, the sum of its members' own costs, and counts
    `acquires` of them."""
    if carry is None:
        target = usage = _NOTHING
        update = _Update({"#n": schema.ACQUIRES}, {":one": schema.n(acquires)}, ["#n :one"])
    else:
        target, usage = carry.target, carry.usage
        update = _Update({"#n": schema.ACQUIRES}, {":one": schema.n(1 + carry.acquires)}, ["#n :one"])
    for i, limit in enumerate(level.limits):
        milli = amounts.get(limit.name, 0)
        capped = not limit.soft or limit.name in checked_soft
        if milli == 0 and not capped:
            continue  # a soft limit not taken from: nothing to charge or check
        cost = bucket.cost_ns(limit, milli) if costs is None else costs.get(limit.name, 0)
        _take(update, i, limit, milli, cost, now, known.get(limit.name), capped, target.get(limit.name, 0))
        if milli:
            update.names[f"#c{i}"] = schema.counter_attr(limit.name)
            update.adds.append(f"#c{i} :u{i}")
            update.values[f":u{i}"] = schema.n(milli + usage.get(limit.name, 0))
    # Usage admitted locally on limits this acquire does not take from.
    for j, (name, milli) in enumerate(usage.items() if usage else ()):
        if milli and not amounts.get(name) and name in level.by_name:
            update.names[f"#x{j}"] = schema.counter_attr(name)
            update.adds.append(f"#x{j} :x{j}")
            update.values[f":x{j}"] = schema.n(milli)
    # The configuration's version: never older than the bucket's (state/config_cache.py); a stale one
    # also needs the bucket to exist (one created meanwhile could not be stamped by the change).
    update.names["#cv"] = schema.VERSION_ATTR
    update.values[":cv"] = schema.n(level.version)
    update.conditions.append("(attribute_not_exists(#cv) OR #cv <= :cv)")
    if level.stale:
        update.names["#pk"] = schema.PK
        update.conditions.append("attribute_exists(#pk)")
    update.sets.append("#cv = :cv")
    return update.request(table, schema.bucket_key(level.entity_id, resource))


def _take(update: _Update, i: int, limit: Limit, milli: int, cost: int, now: int, tat: int | None, capped: bool,
          reserve: int) -> None:
    """One limit's condition and movement in an acquire's write (the module docstring's two forms)."""
    b = f"#b{i}"
    update.names[b] = schema.tat_attr(limit.name)
    clock = bucket.clock(limit, now)
    if milli == 0:
        # Nothing taken from this limit, but a bucket in debt still refuses the call.
        update.conditions.append(f"(attribute_not_exists({b}) OR {b} <= :m{i})")
        update.values[f":m{i}"] = schema.n(clock + limit.tau_ns)
        return
    at = _clock_value(limit, i, now, update.values)
    if tat is not None and tat >= clock:
        # Busy: additions commute, so concurrent busy-form writes succeed in any order.
        if capped:
            update.conditions.append(f"({b} >= {at} AND {b} <= :m{i})")
            update.values[f":m{i}"] = schema.n(clock + limit.tau_ns - cost - reserve)
        else:
            update.conditions.append(f"{b} >= {at}")
        update.sets.append(f"{b} = {b} + :k{i}")
        update.values[f":k{i}"] = schema.n(cost + reserve)
    else:
        # Idle: the bucket is full, which holds any cost a caller may ask for (amounts are checked
        # against the capacity before any write) and the reserve, which is sized to fit.
        update.conditions.append(f"(attribute_not_exists({b}) OR {b} < {at})")
        update.sets.append(f"{b} = :k{i}")
        update.values[f":k{i}"] = schema.n(clock + cost + reserve)


def reserve_return_update(table: str, key: tuple[str, str], limits: Mapping[str, Limit], carry: Any, now: int) -> dict[str, Any]:
    """The UpdateItem that gives a reserve back and counts the usage admitted from it (reservoirs.py):
    unconditional, as a refund (a tat below the clock is a full bucket: the cap at capacity)."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    sets, adds = [], []
    for i, (name, units) in enumerate(carry.held.items()):
        limit = limits.get(name)
        if limit is None or units <= 0:
            continue
        names[f"#b{i}"] = schema.tat_attr(name)
        at = _clock_value(limit, i, now, values)
        sets.append(f"#b{i} = if_not_exists(#b{i}, {at}) - :k{i}")
        values[f":k{i}"] = schema.n(units)
    for i, (name, milli) in enumerate(carry.usage.items()):
        if milli:
            names[f"#c{i}"] = schema.counter_attr(name)
            adds.append(f"#c{i} :u{i}")
            values[f":u{i}"] = schema.n(milli)
    if carry.acquires:
        names["#n"] = schema.ACQUIRES
        adds.append("#n :one")
        values[":one"] = schema.n(carry.acquires)
    expression = " ".join(part for part in ("SET " + ", ".join(sets) if sets else "", "ADD " + ", ".join(adds) if adds else "") if part)
    return {"TableName": table, "Key": schema.bucket_key(*key), "UpdateExpression": expression,
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}


def config_changed(level: Level, item: Mapping[str, Any] | None) -> bool:
    """Whether a refused write's item shows that the level's configuration changed after it was read:
    a newer version, or (for a stale one) no bucket at all."""
    if item is None:
        return level.stale
    return schema.version_of(item) > level.version


def uses_idle_form(level: Level, amounts: Mapping[str, int], known: Mapping[str, int], now: int) -> bool:
    """Whether `bucket_update` writes some limit of `level` in the idle form (its writes do not commute)."""
    for limit in level.limits:
        if amounts.get(limit.name, 0):
            tat = known.get(limit.name)
            if tat is None or tat < bucket.clock(limit, now):
                return True
    return False


def adjustment_update(
    table: str,
    level: Level,
    resource: str,
    costs: Mapping[str, int],
    milli: Mapping[str, int],
    now: int,
    known: Mapping[str, int],
) -> dict[str, Any]:
    """The UpdateItem (without Return* options) moving each limit's tat by `costs` and its counter by
    `milli`. A charge (cost > 0) lands at `now` as on a token bucket, in the form `known` picks, with
    the condition that makes a wrong guess fail; a give-back (cost <= 0) needs no condition."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    conditions, sets, adds = [], [], []
    for i, name in enumerate(costs):
        limit = level.by_name[name]
        b = f"#b{i}"
        names[b] = schema.tat_attr(name)
        names[f"#c{i}"] = schema.counter_attr(name)
        cost = costs[name]
        at = _clock_value(limit, i, now, values)
        if cost <= 0:
            sets.append(f"{b} = if_not_exists({b}, {at}) - :k{i}")
            values[f":k{i}"] = schema.n(-cost)
        elif known.get(name) is not None and known[name] >= bucket.clock(limit, now):
            conditions.append(f"{b} >= {at}")
            sets.append(f"{b} = {b} + :k{i}")
            values[f":k{i}"] = schema.n(cost)
        else:
            conditions.append(f"(attribute_not_exists({b}) OR {b} < {at})")
            sets.append(f"{b} = :k{i}")
            values[f":k{i}"] = schema.n(bucket.clock(limit, now) + cost)
        adds.append(f"#c{i} :u{i}")
        values[f":u{i}"] = schema.n(milli[name])
    request = {
        "TableName": table,
        "Key": schema.bucket_key(level.entity_id, resource),
        "UpdateExpression": "SET " + ", ".join(sets) + " ADD " + ", ".join(adds),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    if conditions:
        request["ConditionExpression"] = " AND ".join(conditions)
    return request


def level_admits(level: Level, amounts: Mapping[str, int], tats: Mapping[str, int], now: int) -> bool:
    """Whether every hard limit of the level holds its amount (soft limits never refuse)."""
    return all(
        limit.soft or bucket.admits(limit, tats.get(limit.name), now, amounts.get(limit.name, 0))
        for limit in level.limits
    )


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
                # A soft limit holds nothing up: the whole request can go as soon as the hard ones allow.
                retry_after_seconds=0.0 if limit.soft else bucket.wait_ns(limit, tat, now, milli) / NANOS,
                soft=limit.soft,
                resets_at=calendar_periods.as_datetime(limit.period(now)[1]) if limit.every else None,
            )
        )
    return result


def rejection(parts: Sequence["Part"], tats: Sequence[Mapping[str, int]], now: int) -> RateLimitExceeded | None:
    """The rejection for these bucket states, or None when every part would admit."""
    if all(level_admits(part.level, part.amounts, t, now) for part, t in zip(parts, tats)):
        return None
    found: list[LimitStatus] = []
    for part, t in zip(parts, tats):
        found.extend(statuses(part.level, part.resource, part.amounts, t, now))
    return RateLimitExceeded(found)


def overdrawn_soft(level: Level, amounts: Mapping[str, int], before: Mapping[str, int], after: Mapping[str, int],
                   now: int) -> list[str]:
    """The soft limits of `level` that this take would have refused: those it took from and left below
    zero (`after`: the written state), and those it did not take from that were already in debt."""
    names = []
    for limit in level.limits:
        if not limit.soft:
            continue
        if amounts.get(limit.name, 0):
            tat = after.get(limit.name)
            if tat is not None and bucket.overdrawn(limit, tat, now):
                names.append(limit.name)
        elif not bucket.admits(limit, before.get(limit.name), now, 0):
            names.append(limit.name)
    return names


def predicted_tats(level: Level, amounts: Mapping[str, int], known: Mapping[str, int], now: int) -> dict[str, int]:
    """What a successful write left, as far as this client can tell without reading it back: exact for
    idle-form limits, a lower bound for busy-form ones (other clients may have taken more)."""
    result = dict(known)
    for limit in level.limits:
        milli = amounts.get(limit.name, 0)
        if milli:
            result[limit.name] = bucket.next_tat(limit, known.get(limit.name), now, milli)
    return result
