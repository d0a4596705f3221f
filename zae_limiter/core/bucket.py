"""Token-bucket math as GCRA on integers. Pure functions: no clock, no I/O.

A bucket's state is its theoretical arrival time `tat` (integer nanoseconds). The bucket is full when
`tat <= now`; each token advances `tat` by the emission interval `period / refill_amount`. Taking `cost`
is allowed when `max(tat, now) + cost <= now + tau`, where `tau` is the capacity's cost. Amounts arrive in
thousandths of a token (integers), so costs are exact integer divisions: a bucket is never charged less
than the amount taken, a give-back is never credited more than the amount returned, and a refund of a
recorded cost cancels it exactly. Rounding always favours the limit, by < 1 ns per write.

A calendar quota is the same bucket with another clock: `clock(limit, now)` is its period's start (epoch
seconds times QUOTA_SCALE) instead of `now`, and a thousandth costs one unit (`Limit` derives its units
so). Within a period nothing refills; at the next boundary the clock jumps past any state, so the quota
is full again, whatever debt it carried. Every rule below then holds for both kinds unchanged.
"""

from __future__ import annotations

from .limits import QUOTA_SCALE, Limit

NANOS = 1_000_000_000


def clock(limit: Limit, now: int) -> int:
    """The bucket's clock at `now`: `now` for a rate limit, the period's start for a quota."""
    if limit.every is None:
        return now
    return limit.period(now)[0] // NANOS * QUOTA_SCALE


def cost_ns(limit: Limit, milli: int) -> int:
    """Clock units (nanoseconds of refill for a rate limit) that `milli` thousandths of a token stand
    for, rounded in the limit's favour: a charge (milli > 0) up, a give-back (milli < 0) towards zero: one
    expression does both, as floor division of the negated product rounds towards minus infinity."""
    return -((-milli * limit.period_ns) // limit.refill_milli)


def next_tat(limit: Limit, tat: int | None, now: int, milli: int) -> int:
    """The state a take of `milli` at `now` leaves: `max(tat, clock) + cost` (what both write forms leave,
    acquire.py; the prediction of a write in flight)."""
    at = clock(limit, now)
    return (at if tat is None or tat < at else tat) + cost_ns(limit, milli)


def admits(limit: Limit, tat: int | None, now: int, milli: int) -> bool:
    at = clock(limit, now)
    base = at if tat is None or tat < at else tat
    return base + cost_ns(limit, milli) <= at + limit.tau_ns


def available(limit: Limit, tat: int | None, now: int) -> float:
    """Tokens that could be taken now; negative while the bucket is in debt."""
    at = clock(limit, now)
    if tat is None or tat <= at:
        return limit.capacity
    deficit = tat - at
    return (limit.tau_ns - deficit) * limit.refill_milli / limit.period_ns / 1000


def wait_ns(limit: Limit, tat: int | None, now: int, milli: int) -> int:
    """Nanoseconds until `milli` could be taken (0 if now). A quota that lacks it waits for its next
    period, which starts full."""
    if limit.every is not None:
        return 0 if admits(limit, tat, now, milli) else limit.period(now)[1] - now
    base = now if tat is None or tat < now else tat
    return max(0, base + cost_ns(limit, milli) - limit.tau_ns - now)


def overdrawn(limit: Limit, tat: int, now: int) -> bool:
    """Whether a bucket left at `tat` by a take at `now` went below zero: the take would have been
    refused (what a soft limit reports instead of refusing)."""
    return tat > clock(limit, now) + limit.tau_ns
