"""Token-bucket math as GCRA on integers. Pure functions: no clock, no I/O.

A bucket's state is its theoretical arrival time `tat` (integer nanoseconds). The bucket is full when
`tat <= now`; each token advances `tat` by the emission interval `period / refill_amount`. Taking `cost`
is allowed when `max(tat, now) + cost <= now + tau`, where `tau` is the capacity's cost. Amounts arrive in
thousandths of a token (integers), so costs are exact integer divisions rounded up: a bucket is never
charged less than the amount taken, a give-back is never credited more than the amount returned, and
a refund of a recorded cost cancels it exactly. Rounding always favours the limit, by < 1 ns per write.
"""

from __future__ import annotations

from .limits import Limit


def cost_ns(limit: Limit, milli: int) -> int:
    """Nanoseconds of refill that `milli` thousandths of a token stand for, rounded in the limit's favour:
    a charge (milli > 0) up, a give-back (milli < 0) towards zero: one expression does both, as floor
    division of the negated product rounds towards minus infinity."""
    return -((-milli * limit.period_ns) // limit.refill_milli)


def tau_ns(limit: Limit) -> int:
    """Nanoseconds of refill the whole capacity stands for (`cost_ns` of the capacity, kept on the Limit)."""
    return limit.tau_ns


def admits(limit: Limit, tat: int | None, now: int, milli: int) -> bool:
    base = now if tat is None or tat < now else tat
    return base + cost_ns(limit, milli) <= now + limit.tau_ns


def available(limit: Limit, tat: int | None, now: int) -> float:
    """Tokens that could be taken now; negative while the bucket is in debt."""
    if tat is None or tat <= now:
        return limit.capacity
    deficit_ns = tat - now
    return (limit.tau_ns - deficit_ns) * limit.refill_milli / limit.period_ns / 1000


def wait_ns(limit: Limit, tat: int | None, now: int, milli: int) -> int:
    """Nanoseconds until `milli` could be taken (0 if now)."""
    base = now if tat is None or tat < now else tat
    return max(0, base + cost_ns(limit, milli) - limit.tau_ns - now)


def next_tat(limit: Limit, tat: int | None, now: int, milli: int) -> int:
    base = now if tat is None or tat < now else tat
    return base + cost_ns(limit, milli)
