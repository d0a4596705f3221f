"""Properties of the token-bucket math (zae_limiter/bucket.py), for any limit and any sequence of requests.

Notation: C = capacity, R = refill amount (both in thousandths), P = refill period (ns); a cost is the
refill time of an amount, m*P/R, rounded up to the next nanosecond."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from zae_limiter import Limit
from zae_limiter.core.bucket import admits, available, cost_ns, next_tat, wait_ns

NOW = 1_800_000_000 * 10**9


@st.composite
def limits(draw) -> Limit:
    capacity = draw(st.integers(1, 10**9))  # thousandths
    refill = draw(st.integers(1, 10**9))
    period = draw(st.one_of(st.integers(1, 10**6), st.integers(10**9, 86_400 * 10**9)))  # ns
    return Limit("x", capacity / 1000, refill / 1000, period / 10**9)


def exact_ns(limit: Limit, milli: int) -> Fraction:
    return Fraction(milli * limit.period_ns, limit.refill_milli)


@settings(max_examples=300, deadline=None)
@given(limits(), st.integers(0, 10**12))
def test_a_cost_is_the_refill_time_rounded_in_the_limits_favour(limit, milli):
    cost = cost_ns(limit, milli)
    assert exact_ns(limit, milli) <= cost < exact_ns(limit, milli) + 1  # never charged less, by < 1 ns more
    give_back = cost_ns(limit, -milli)
    assert -exact_ns(limit, milli) <= give_back < -exact_ns(limit, milli) + 1  # never credited more, by < 1 ns less


@st.composite
def requests(draw, limit: Limit) -> list[tuple[int, int]]:
    """(nanoseconds since the previous request, thousandths asked for), amounts up to the capacity."""
    step = st.one_of(st.just(0), st.integers(0, max(1, limit.period_ns // 10)), st.integers(0, 10 * limit.period_ns))
    amount = st.one_of(st.integers(0, limit.capacity_milli), st.just(limit.capacity_milli), st.integers(0, 3))
    return draw(st.lists(st.tuples(step, amount), min_size=1, max_size=60))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_never_admits_more_than_capacity_plus_refill(data):
    limit = data.draw(limits())
    tat, now, admitted = None, NOW, 0
    for elapsed, milli in data.draw(requests(limit)):
        now += elapsed
        if admits(limit, tat, now, milli):
            assert next_tat(limit, tat, now, milli) <= now + limit.tau_ns
            tat = next_tat(limit, tat, now, milli)
            admitted += milli
        # admitted <= C + R * (time since the first request) / P, up to the < 1 ns by which the
        # capacity's own cost is rounded up.
        assert admitted * limit.period_ns < limit.capacity_milli * limit.period_ns + limit.refill_milli * (now - NOW + 1)
        assert available(limit, tat, now) >= 0  # admissions alone never leave debt


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_available_stays_between_the_debt_of_adjustments_and_the_capacity(data):
    limit = data.draw(limits())
    tat, now, debt, adjustments = None, NOW, 0, 0  # debt: thousandths added by positive adjustments
    for elapsed, milli in data.draw(requests(limit)):
        now += elapsed
        if data.draw(st.booleans()):  # an adjust: unconditional, like adjustment_update
            delta = data.draw(st.integers(-limit.capacity_milli, 2 * limit.capacity_milli))
            tat = (now if tat is None else tat) + cost_ns(limit, delta)
            debt += max(0, delta)
            adjustments += 1
        elif admits(limit, tat, now, milli):
            tat = next_tat(limit, tat, now, milli)
        tokens = available(limit, tat, now)
        assert tokens <= limit.capacity
        # At most the debt below zero, plus < 1 ns of rounding per adjustment.
        assert tokens >= -(debt + adjustments * limit.refill_milli / limit.period_ns) / 1000


@settings(max_examples=300, deadline=None)
@given(limits(), st.integers(-(10**13), 10**13), st.data())
def test_wait_is_exactly_the_time_until_admission(limit, offset, data):
    tat = NOW + offset
    milli = data.draw(st.integers(0, limit.capacity_milli))
    wait = wait_ns(limit, tat, NOW, milli)
    assert (wait == 0) == admits(limit, tat, NOW, milli)
    assert admits(limit, tat, NOW + wait, milli)
    if wait > 0:
        assert not admits(limit, tat, NOW + wait - 1, milli)


@settings(max_examples=300, deadline=None)
@given(limits(), st.data())
def test_a_full_bucket_admits_its_capacity_at_once_and_not_a_thousandth_more(limit, data):
    assume(limit.capacity_milli < 10**8)
    assert available(limit, None, NOW) == limit.capacity
    tat = next_tat(limit, None, NOW, limit.capacity_milli)
    assert not admits(limit, tat, NOW, 1)
