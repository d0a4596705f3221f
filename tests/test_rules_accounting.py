"""Exact accounting (DESIGN section 13) on the default configuration, sync and async: the expected values
come from a plain token bucket, `tokens(t) = min(capacity, tokens(t0) + rate * (t - t0))`, written out
by hand for each case."""

from __future__ import annotations

import pytest

from zae_limiter import Limit, RateLimitExceeded


def take(limiter, limit: Limit, amount: float = 1, entity: str = "k") -> bool:
    try:
        with limiter.acquire(entity, "gpt", [limit], consume={limit.name: amount}):
            return True
    except RateLimitExceeded:
        return False


@pytest.mark.parametrize(
    "limit, burst, interval",
    [
        (Limit.per_second("rps", 10), 10, 0.1),
        (Limit.per_second("rps", 4, burst=12), 12, 0.25),
        (Limit.per_minute("rpm", 5), 5, 12.0),
        (Limit.per_minute("rpm", 2), 2, 30.0),
        (Limit.per_minute("rpm", 100, burst=150), 150, 0.6),
        (Limit.per_hour("rph", 1000), 1000, 3.6),
        (Limit.per_hour("rph", 1000, burst=1500), 1500, 3.6),
        (Limit.per_day("rpd", 3), 3, 28_800.0),
        (Limit.per_day("rpd", 24, burst=48), 48, 3_600.0),
    ],
    ids=lambda value: value.to_text() if isinstance(value, Limit) else None,
)
def test_a_fresh_bucket_admits_its_whole_capacity_at_once(limiter, clock, limit, burst, interval):
    """A bucket never used is full: `burst` immediate acquires of 1 are admitted, the next is refused with
    a retry-after of one emission interval (period / rate), and one interval later one more is admitted."""
    assert [take(limiter, limit) for _ in range(burst)] == [True] * burst
    with pytest.raises(RateLimitExceeded) as refused:
        with limiter.acquire("k", "gpt", [limit], consume={limit.name: 1}):
            pass
    assert refused.value.retry_after_seconds == pytest.approx(interval, abs=1e-9)
    clock.advance(interval)
    assert take(limiter, limit)
    assert not take(limiter, limit)


def test_a_positive_adjust_is_charged_when_it_is_applied(limiter, clock):
    """Acquire 500 of 10,000/min, work for 60 s (the bucket refills to 10,000), report 5,000 more: a token
    bucket holds 10,000 - 5,000 = 5,000 afterwards."""
    tpm = Limit.per_minute("tpm", 10_000)
    with limiter.acquire("k", "gpt", [tpm], consume={"tpm": 500}) as lease:
        assert limiter.available("k", "gpt", [tpm]) == {"tpm": 9_500}
        clock.advance(60)
        assert limiter.available("k", "gpt", [tpm]) == {"tpm": 10_000}  # refilled, capped at capacity
        lease.adjust(tpm=5_000)
    assert limiter.available("k", "gpt", [tpm]) == {"tpm": 5_000}


def test_an_adjust_into_debt_after_a_refill(limiter, clock):
    """Capacity 1,000 refilled 100/min: full again after a while, then an adjust of 1,500 leaves -500,
    which refuses everything, even a call taking none of it, until 5 minutes of refill pay it back."""
    tpm = Limit("tpm", 1_000, 100, 60)
    rpm = Limit.per_minute("rpm", 100)
    with limiter.acquire("k", "gpt", [tpm, rpm], consume={"tpm": 100, "rpm": 1}) as lease:
        clock.advance(600)
        lease.adjust(tpm=1_500)
    assert limiter.available("k", "gpt", [tpm, rpm])["tpm"] == -500
    with pytest.raises(RateLimitExceeded) as refused:
        with limiter.acquire("k", "gpt", [tpm, rpm], consume={"rpm": 1}):
            pass
    assert refused.value.retry_after_seconds == pytest.approx(300)
    clock.advance(300)
    with limiter.acquire("k", "gpt", [tpm, rpm], consume={"rpm": 1}):
        pass


def test_a_refund_gives_back_exactly_what_was_taken_capped_at_capacity(limiter, clock):
    rpm = Limit.per_minute("rpm", 60)  # one token per second
    with pytest.raises(ZeroDivisionError):
        with limiter.acquire("k", "gpt", [rpm], consume={"rpm": 30}) as lease:
            lease.adjust(rpm=10)  # 40 taken: 20 left
            clock.advance(15)  # 35 left
            assert limiter.available("k", "gpt", [rpm]) == {"rpm": 35}
            1 / 0  # the work fails: 40 come back, capped at 60
    assert limiter.available("k", "gpt", [rpm]) == {"rpm": 60}
    with limiter.acquire("k", "gpt", [rpm], consume={"rpm": 50}) as lease:
        lease.adjust(rpm=-20)  # a give-back within the lease: 30 taken in all
    assert limiter.available("k", "gpt", [rpm]) == {"rpm": 30}


def test_cascade_charges_adjusts_and_refunds_both_levels_exactly(limiter, clock):
    limiter.create_entity("org")
    limiter.set_limits("org", [Limit.per_minute("tpm", 20_000)], resource="gpt")
    limiter.create_entity("key", parent_id="org", cascade=True)
    key_tpm = Limit.per_minute("tpm", 10_000)
    with limiter.acquire("key", "gpt", [key_tpm], consume={"tpm": 1_000}) as lease:
        clock.advance(60)  # both refill to capacity
        lease.adjust(tpm=4_000)
    assert limiter.available("key", "gpt", [key_tpm]) == {"tpm": 6_000}
    assert limiter.available("org", "gpt") == {"tpm": 16_000}
    with pytest.raises(RateLimitExceeded) as refused:  # the key has 6,000: refused at its own level
        with limiter.acquire("key", "gpt", [key_tpm], consume={"tpm": 7_000}):
            pass
    assert {s.entity_id for s in refused.value.exceeded} == {"key"}
    assert limiter.available("org", "gpt") == {"tpm": 16_000}  # nothing taken at either level
    with pytest.raises(KeyError):
        with limiter.acquire("key", "gpt", [key_tpm], consume={"tpm": 5_000}):
            raise KeyError("the work failed")
    assert limiter.available("key", "gpt", [key_tpm]) == {"tpm": 6_000}
    assert limiter.available("org", "gpt") == {"tpm": 16_000}


def test_an_adjust_from_a_stale_view_still_lands_where_a_token_bucket_would(make_limiter, clock):
    """Another client keeps the bucket busy while this lease's client believes it idle (and the other way
    round): a wrong guess fails its condition and is written again, never charged wrongly."""
    one, other = make_limiter(clock=clock), make_limiter(clock=clock)
    tpm = Limit.per_minute("tpm", 6_000)  # 100 per second
    with one.acquire("k", "gpt", [tpm], consume={"tpm": 100}) as lease:
        clock.advance(60)  # `one` last saw the bucket busy for 1 s: it now believes it idle
        with other.acquire("k", "gpt", [tpm], consume={"tpm": 3_000}):  # 3,000 left
            pass
        lease.adjust(tpm=1_000)  # charged on the busy bucket: 2,000 left
    assert other.available("k", "gpt", [tpm]) == {"tpm": 2_000}
    with one.acquire("k", "gpt", [tpm], consume={"tpm": 100}) as lease:  # `one` now sees it busy
        clock.advance(60)
        lease.adjust(tpm=1_000)  # ...but it has refilled: charged at now, from full
    assert other.available("k", "gpt", [tpm]) == {"tpm": 5_000}
