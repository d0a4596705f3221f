"""The reservoirs' decisions without I/O (state/reservoirs.py), on a clock the test moves: how a reserve
is sized from the client's rate (unbiased from its first takes, with a slow start of one
`reservoir_seconds` window), that a reserve stays usable until it is given back, and that an acquire
counts once in the rate however often it tries the reserve (tests/test_reservoir_queue.py has the
acquires that wait for a refill, and the writes sent again after a refusal). Expected values come
from the definitions: a steady rate of r acquires a second is r, a burst of k acquires is k tokens,
MAX_SHARE of the capacity is the most one client holds."""

from __future__ import annotations

import pytest

from zae_limiter import Limit
from zae_limiter.core import bucket
from zae_limiter.core.acquire import Level, Part
from zae_limiter.state.reservoir_rate import RATE_HALF_LIFE, Rate
from zae_limiter.state.reservoirs import MAX_SHARE, Reservoirs

SECONDS = 0.2
RPS = Limit.per_second("rps", 2000)  # capacity 2,000: MAX_SHARE of it is 200 tokens
NOW_NS = 10**18  # the buckets' clock; nothing here depends on its refill
PART = Part(Level("k", (RPS,)), "gpt", {"rps": 1000})  # one token


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reservoirs(clock) -> Reservoirs:
    return Reservoirs(SECONDS, clock)


def tokens(units: int) -> float:
    return units / bucket.cost_ns(RPS, 1000)


def drive(reservoirs: Reservoirs, clock: Clock, count: int, step: float) -> int:
    """`count` acquires `step` seconds apart, each admitted from the reserve or by a write that lands
    (an empty view: the bucket is full); returns how many writes that took."""
    writes = 0
    for _ in range(count):
        if not reservoirs.take([PART]):
            writes += 1
            reservoirs.landed(PART, reservoirs.carry(PART, {}, NOW_NS))
        clock.now += step
    return writes


def test_a_steady_rate_is_seen_as_itself():
    rate = Rate()
    at = 0.0
    for _ in range(1500):  # 500 a second for 3 s
        at += 0.002
        rate.add({"rps": 1000}, at)
    assert rate.of("rps", SECONDS) == pytest.approx(500_000, rel=0.01)


def test_the_first_takes_already_give_the_rate():
    rate = Rate()
    for i in range(101):  # 100 intervals of 5 ms: 200 a second, over half a second
        rate.add({"rps": 1000}, 10.0 + i * 0.005)
    assert rate.of("rps", SECONDS) == pytest.approx(200_000, rel=0.01)


def test_a_burst_reserves_no_more_than_it_took_and_a_pause_starts_over():
    rate = Rate()
    for i in range(10):  # ten acquires within 18 ms: far less than one window
        rate.add({"rps": 1000}, 10.0 + i * 0.002)
    assert 9_000 <= rate.of("rps", SECONDS) * SECONDS <= 10_000  # about 9 tokens of the 10 it took
    rate.add({"rps": 1000}, 10.0 + RATE_HALF_LIFE + 0.5)  # back after a pause
    assert rate.of("rps", SECONDS) == 0.0  # its first take again: no rate yet


def test_a_hot_client_grows_its_reserve_to_its_share_in_a_few_writes(reservoirs, clock):
    writes = drive(reservoirs, clock, 2000, 0.0001)  # 10,000 a second for 0.2 s
    assert writes <= 20  # slow start: the reserve doubles with each refill
    assert 0 < tokens(sum(reservoirs._reserves[PART.key].units.values())) <= MAX_SHARE * RPS.capacity
    assert reservoirs.local_admissions == 2000 - writes


def test_an_expired_reserve_admits_until_it_is_given_back(reservoirs, clock):
    drive(reservoirs, clock, 300, 0.0001)
    held = reservoirs._reserves[PART.key].units["rps"]
    clock.now += SECONDS + 0.1  # past its expiry: the client paused
    assert reservoirs.take([PART])  # still charged to the bucket, so still this client's to admit from
    (_, back, _), = reservoirs.due()  # the background thread's round gives the rest back
    assert back.held == {"rps": held - bucket.cost_ns(RPS, 1000)}
    assert not reservoirs.take([PART])


def test_an_acquire_counts_once_in_the_rate_however_often_it_tries_the_reserve(reservoirs, clock):
    drive(reservoirs, clock, 50, 0.001)
    big = Part(PART.level, "gpt", {"rps": 1_000_000})  # 1,000 tokens: more than the reserve holds
    assert not reservoirs.take([big])  # it misses (and counts in the rate)...
    counted = dict(reservoirs._rates[PART.key].per_second)
    clock.now += 0.001
    assert not reservoirs.take([big], observe=False)  # ...then, after waiting for a refill, tries again
    assert reservoirs._rates[PART.key].per_second == counted
