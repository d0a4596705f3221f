"""Token reservoirs (opt-in `reservoir_seconds`, reservoirs.py) on both APIs: most acquires of a hot key
are admitted from the client's reserve with no request, and the definition still holds: admitted
consumption within capacity + refill, the consumed counters equal what was admitted, unused reserve
given back on close and when it expires. The bucket math runs on a fake clock (nothing refills unless a
test says so); the reserves' own timing is the real monotonic clock, as in production."""

from __future__ import annotations

import time

import pytest

from conftest import RequestCounter
from zae_limiter import Limit, RateLimitExceeded
from zae_limiter.core import schema
from zae_limiter.state.reservoirs import FLUSH_SECONDS, MAX_SHARE

SECONDS = 0.3


def counters(dynamodb, table_name, entity="k", resource="gpt") -> dict[str, int]:
    item = dynamodb.get_item(TableName=table_name, Key=schema.bucket_key(entity, resource), ConsistentRead=True).get("Item")
    return schema.bucket_counters(item)


class Pace:
    """The reservoirs' clock in the request-count tests: one acquire every STEP seconds, whatever the
    machine's speed. A reserve is sized from the client's observed rate, which a loaded machine lowers;
    on this clock the rate, and so the number of writes, is the same on every run."""

    STEP = 0.002  # 500 acquires a second

    def __init__(self, limiter) -> None:
        self.now = 1_000.0
        getattr(limiter, "limiter", limiter)._core.reservoirs.monotonic = lambda: self.now

    def tick(self) -> None:
        self.now += self.STEP


def hammer(limiter, limits, n, consume, entity="k", pace: Pace | None = None) -> int:
    admitted = 0
    for _ in range(n):
        try:
            with limiter.acquire(entity, "gpt", limits, consume=consume):
                admitted += 1
        except RateLimitExceeded:
            pass
        if pace is not None:
            pace.tick()
    return admitted


def test_a_hot_key_is_admitted_mostly_without_requests(make_limiter, clock, dynamodb, table_name):
    rpm = [Limit.per_minute("rpm", 100_000)]
    limiter = make_limiter(clock=clock, reservoir_seconds=SECONDS)
    counter = RequestCounter(limiter)
    assert hammer(limiter, rpm, 400, {"rpm": 1}, pace=Pace(limiter)) == 400
    writes = counter.calls.count("UpdateItem")
    assert writes <= 40, counter.calls  # at most 0.1 requests per acquire
    stats = limiter.stats.snapshot()
    assert stats["local_admissions"] == 400 - writes
    assert stats["reserved_tokens"]["rpm"] > 0
    limiter.close()  # gives the reserve back and counts what it admitted
    assert counters(dynamodb, table_name) == {"rpm": 400_000}
    checker = make_limiter(clock=clock)
    assert checker.available("k", "gpt", rpm) == {"rpm": 100_000 - 400}  # exactly: nothing stranded


def test_a_reserve_never_admits_past_the_capacity(make_limiter, clock, dynamodb, table_name):
    rpm = [Limit.per_minute("rpm", 500)]
    limiter = make_limiter(clock=clock, reservoir_seconds=SECONDS)
    assert hammer(limiter, rpm, 700, {"rpm": 1}) == 500  # the whole capacity, and not one more
    limiter.close()
    assert counters(dynamodb, table_name) == {"rpm": 500_000}


def test_leases_from_a_reserve_adjust_and_refund_exactly(make_limiter, clock, dynamodb, table_name):
    limits = [Limit.per_minute("rpm", 100_000), Limit.per_minute("tpm", 10_000_000)]
    limiter = make_limiter(clock=clock, reservoir_seconds=SECONDS)
    hammer(limiter, limits, 100, {"rpm": 1, "tpm": 10})  # warm: a reserve is held
    with limiter.acquire("k", "gpt", limits, consume={"rpm": 1, "tpm": 10}) as lease:
        assert lease._state.local
        lease.adjust(tpm=5)
        lease.adjust(tpm=-3)
    with pytest.raises(KeyError):
        with limiter.acquire("k", "gpt", limits, consume={"rpm": 1, "tpm": 10}) as lease:
            assert lease._state.local
            raise KeyError("the work failed")
    limiter.close()
    # 101 kept (100 + the adjusted one), the refunded one gave everything back.
    assert counters(dynamodb, table_name) == {"rpm": 101_000, "tpm": 100 * 10_000 + 12_000}
    checker = make_limiter(clock=clock)
    assert checker.available("k", "gpt", limits) == {"rpm": 100_000 - 101, "tpm": 10_000_000 - 1_012}


def test_what_a_reserve_strands_is_bounded_and_comes_back_when_it_expires(make_limiter, clock, dynamodb, table_name):
    rpm = [Limit.per_minute("rpm", 300)]
    holding = 3.0  # long enough for the other client to run into the reserve while it is held
    holder = make_limiter(clock=clock, reservoir_seconds=holding)
    other = make_limiter(clock=clock)
    assert hammer(holder, rpm, 100, {"rpm": 1}) == 100
    held = holder.stats.snapshot()["reserved_tokens"]["rpm"]
    assert 0 < held <= MAX_SHARE * 300  # at most a tenth of the capacity is out of reach of others
    first = hammer(other, rpm, 250, {"rpm": 1})
    assert 200 - held <= first <= 200  # what the other client missed is at most what was held
    time.sleep(holding + FLUSH_SECONDS + 0.5)  # expired, and given back by the limiter's own thread
    assert holder.stats.snapshot()["reserved_tokens"] == {}
    assert first + hammer(other, rpm, 50, {"rpm": 1}) == 200  # and it came back: nothing stranded for good
    assert counters(dynamodb, table_name) == {"rpm": 300_000}  # usage counted, without a close
    holder.close()


def test_a_cascade_parent_is_reserved_too(make_limiter, clock, dynamodb, table_name):
    tpm = [Limit.per_minute("tpm", 1_000_000)]
    admin = make_limiter(clock=clock)
    admin.create_entity("org")
    admin.set_limits("org", tpm, resource="gpt")
    admin.create_entity("k", parent_id="org", cascade=True)
    limiter = make_limiter(clock=clock, reservoir_seconds=SECONDS)
    counter = RequestCounter(limiter)
    assert hammer(limiter, tpm, 300, {"tpm": 10}, pace=Pace(limiter)) == 300
    assert counter.calls.count("TransactWriteItems") <= 30
    limiter.close()
    assert counters(dynamodb, table_name, "k") == counters(dynamodb, table_name, "org") == {"tpm": 3_000_000}
    assert admin.available("org", "gpt") == {"tpm": 1_000_000 - 3_000}
