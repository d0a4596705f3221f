"""Clock skew between clients: each client decides with its own clock, so a client whose clock runs ahead
sees refill that has not happened yet. The over-admission this allows is bounded by the refill over the
spread of the clocks (fastest minus slowest): admitted <= capacity + rate * (T + spread).

Why: every write leaves tat >= (the first writer's now) + sum of costs, because the idle form only ever
moves tat forward, and every admission leaves tat <= (its writer's now) + tau. Against the embedded
server, with one FakeClock per client offset from a common true time."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zae_limiter import Limit, RateLimitExceeded, SyncRateLimiter
from zae_limiter.local import ensure_table

pytestmark = pytest.mark.server

LIMIT = Limit.per_minute("rpm", 10)  # 1 token every 6 s
TRUE_START = 1_800_000_000 * 10**9


class SkewedClock:
    """A client's clock: the common true time plus this client's offset (both moved by the test)."""

    def __init__(self, true_time: list[int]) -> None:
        self.true_time = true_time
        self.offset = 0

    def __call__(self) -> int:
        return self.true_time[0] + self.offset


@pytest.fixture(scope="module")
def clients(endpoint_url):
    table = f"skew_{uuid.uuid4().hex[:8]}"
    ensure_table(table, endpoint_url=endpoint_url, region="us-east-1")
    true_time = [TRUE_START]
    made = []
    for _ in range(3):
        clock = SkewedClock(true_time)
        # The default configuration: every decision goes to the server, where skew matters.
        limiter = SyncRateLimiter(table_name=table, region="us-east-1", endpoint_url=endpoint_url,
                                  clock=clock)
        made.append((limiter, clock))
    yield true_time, made
    for limiter, _ in made:
        limiter.close()


def test_a_client_ahead_by_one_refill_interval_admits_one_token_more(clients):
    true_time, made = clients
    (on_time, on_time_clock), (ahead, ahead_clock) = made[0], made[1]
    # 6 s ahead: one token's refill.
    on_time_clock.offset, ahead_clock.offset = 0, 6 * 10**9
    key = f"k{uuid.uuid4().hex[:8]}"
    with on_time.acquire(key, "api", [LIMIT], consume={"rpm": 10}):
        pass  # the whole capacity, at true time t
    with pytest.raises(RateLimitExceeded):
        with on_time.acquire(key, "api", [LIMIT], consume={"rpm": 1}):
            pass
    with ahead.acquire(key, "api", [LIMIT], consume={"rpm": 1}):
        pass  # still at true time t: the refill of its 6 s lead, and not a token more
    with pytest.raises(RateLimitExceeded):
        with ahead.acquire(key, "api", [LIMIT], consume={"rpm": 1}):
            pass


OFFSET = st.integers(-3 * 10**9, 3 * 10**9)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    offsets=st.lists(OFFSET, min_size=3, max_size=3),
    steps=st.lists(
        st.tuples(st.integers(0, 2), st.one_of(st.just(0), st.integers(0, 4 * 10**9)), st.integers(1, 4000)),
        min_size=1, max_size=25,
    ),
)
def test_skew_over_admits_at_most_the_refill_over_the_spread_of_clocks(clients, offsets, steps):
    true_time, made = clients
    for (_, clock), offset in zip(made, offsets):
        clock.offset = offset
    true_time[0] += 10**12  # far from the previous example
    key = f"k{uuid.uuid4().hex[:8]}"
    start, admitted = true_time[0], 0
    for client, elapsed, milli in steps:
        true_time[0] += elapsed
        limiter = made[client][0]
        try:
            with limiter.acquire(key, "api", [LIMIT], consume={"rpm": milli / 1000}):
                admitted += milli
        except RateLimitExceeded:
            pass
    spread = max(offsets) - min(offsets)
    elapsed_true = true_time[0] - start
    # In thousandths scaled by the period: admitted*P < C*P + R*(T + spread + 1 ns of tau's rounding).
    assert admitted * LIMIT.period_ns < LIMIT.capacity_milli * LIMIT.period_ns + LIMIT.refill_milli * (elapsed_true + spread + 1)


@pytest.mark.parametrize("inside_ms", [1, 5, 15])
def test_a_fresh_client_never_takes_more_than_the_bucket_holds_just_after_it_refilled(endpoint_url, inside_ms):
    """A client with no view of the bucket writes in the idle form. Just after the bucket came back to
    (nearly) full, the tokens still missing must be respected: here 10 000 are asked while the bucket
    holds a few less."""
    from conftest import FakeClock

    table = f"idle_{uuid.uuid4().hex[:8]}"
    ensure_table(table, endpoint_url=endpoint_url, region="us-east-1")
    limit = [Limit.per_minute("tpm", 10_000)]
    clock = FakeClock()
    first = SyncRateLimiter(table_name=table, region="us-east-1", endpoint_url=endpoint_url, clock=clock)
    fresh = SyncRateLimiter(table_name=table, region="us-east-1", endpoint_url=endpoint_url, clock=clock)
    try:
        with first.acquire("k", "api", limit, consume={"tpm": 10_000}):
            pass
        tat = first._core.known_tats("k", "api")["tpm"]
        clock.now = tat - inside_ms * 10**6  # the bucket lacks `inside_ms` of refill: 1.7 tokens per ms
        short = first.available("k", "api", limit)["tpm"]
        assert 10_000 - short == pytest.approx(inside_ms * 10_000 / 60_000)
        with pytest.raises(RateLimitExceeded):
            with fresh.acquire("k", "api", limit, consume={"tpm": 10_000}):
                pass
        assert first.available("k", "api", limit)["tpm"] == short  # nothing was taken
    finally:
        first.close()
        fresh.close()
