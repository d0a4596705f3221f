"""The hot path's cost, counted: one DynamoDB request per warm acquire, whatever the number of limits."""

from __future__ import annotations

import pytest

from conftest import RequestCounter
from zae_limiter import Limit, RateLimitExceeded

THREE = [Limit.per_minute("rpm", 100), Limit.per_minute("tpm", 10_000), Limit.per_day("rpd", 1_000)]


@pytest.mark.parametrize("limits", [THREE[:1], THREE], ids=["1-limit", "3-limits"])
def test_warm_acquire_is_one_conditional_update(limiter, limits):
    counter = RequestCounter(limiter)
    consume = {limit.name: 1 for limit in limits}
    with limiter.acquire("k", "gpt", limits, consume=consume):
        pass
    assert counter.calls == ["BatchGetItem", "UpdateItem"]  # cold: the stored configuration is read once
    for _ in range(3):
        counter.reset()
        with limiter.acquire("k", "gpt", limits, consume=consume):
            pass
        assert counter.calls == ["UpdateItem"]


def test_rejection_is_decided_from_the_failed_write(make_limiter, clock):
    rpm = [Limit.per_minute("rpm", 2)]
    other = make_limiter(clock=clock)
    with other.acquire("k", "gpt", rpm, consume={"rpm": 2}):
        pass
    limiter = make_limiter(clock=clock, reject_cache_seconds=0)  # no local view: DynamoDB decides
    limiter.available("k", "gpt", rpm)  # reads the configuration (and the bucket) once
    counter = RequestCounter(limiter)
    with pytest.raises(RateLimitExceeded) as raised:
        with limiter.acquire("k", "gpt", rpm, consume={"rpm": 1}):
            pass
    assert counter.calls == ["UpdateItem"]  # the failed write's answer decides: no read follows
    assert raised.value.retry_after_seconds > 0


def test_a_known_exhausted_bucket_rejects_without_a_request(make_limiter, clock):
    limiter = make_limiter(clock=clock, reject_cache_seconds=30)
    rpm = [Limit.per_minute("rpm", 2)]
    with limiter.acquire("k", "gpt", rpm, consume={"rpm": 2}):
        pass
    counter = RequestCounter(limiter)
    for _ in range(3):
        with pytest.raises(RateLimitExceeded) as raised:
            with limiter.acquire("k", "gpt", rpm, consume={"rpm": 1}):
                pass
        assert raised.value.retry_after_seconds == pytest.approx(30.0)
    assert counter.calls == []  # decided from what the client already knows
    clock.advance(30)  # a token is back: the local view no longer rejects, so DynamoDB decides
    with limiter.acquire("k", "gpt", rpm, consume={"rpm": 1}):
        pass
    assert counter.calls == ["UpdateItem"]


def test_the_local_view_only_rejects_while_fresh(make_limiter, clock):
    import time

    limiter = make_limiter(clock=clock, reject_cache_seconds=0.2)
    rpm = [Limit.per_minute("rpm", 2)]
    with limiter.acquire("k", "gpt", rpm, consume={"rpm": 2}):
        pass
    time.sleep(0.25)  # past the window another client could have refunded: DynamoDB decides again
    counter = RequestCounter(limiter)
    with pytest.raises(RateLimitExceeded):
        with limiter.acquire("k", "gpt", rpm, consume={"rpm": 1}):
            pass
    assert counter.calls == ["UpdateItem"]


def test_disabled_local_rejection_always_asks(make_limiter, clock):
    limiter = make_limiter(clock=clock, reject_cache_seconds=0)
    rpm = [Limit.per_minute("rpm", 1)]
    with limiter.acquire("k", "gpt", rpm, consume={"rpm": 1}):
        pass
    counter = RequestCounter(limiter)
    with pytest.raises(RateLimitExceeded):
        with limiter.acquire("k", "gpt", rpm, consume={"rpm": 1}):
            pass
    assert counter.calls == ["UpdateItem"]


def test_a_stale_view_costs_one_retry_and_never_a_wrong_answer(make_limiter, clock):
    one, other = make_limiter(clock=clock), make_limiter(clock=clock)
    rpm = [Limit.per_minute("rpm", 10)]
    with one.acquire("k", "gpt", rpm, consume={"rpm": 1}):
        pass
    clock.advance(60)  # `one` saw the bucket busy until t+6s, so it now believes the bucket idle...
    with other.acquire("k", "gpt", rpm, consume={"rpm": 4}):  # ...but `other` has made it busy again
        pass
    counter = RequestCounter(one)
    with one.acquire("k", "gpt", rpm, consume={"rpm": 6}):
        pass
    assert counter.calls == ["UpdateItem", "UpdateItem"]  # the wrong guess fails its condition, once
    assert one.available("k", "gpt", rpm)["rpm"] == 0  # and the retry took exactly what was left
    with pytest.raises(RateLimitExceeded):
        with other.acquire("k", "gpt", rpm, consume={"rpm": 1}):
            pass
    clock.advance(6)
    counter.reset()
    with one.acquire("k", "gpt", rpm, consume={"rpm": 1}):  # its view is current again: one request
        pass
    assert counter.calls == ["UpdateItem"]


def test_warm_cascade_acquire_is_one_transaction(limiter):
    limiter.create_entity("proj")
    limiter.create_entity("key", parent_id="proj", cascade=True)
    rpm = [Limit.per_minute("rpm", 100)]
    with limiter.acquire("key", "gpt", rpm, consume={"rpm": 1}):
        pass
    counter = RequestCounter(limiter)
    with limiter.acquire("key", "gpt", rpm, consume={"rpm": 1}):
        pass
    assert counter.calls == ["TransactWriteItems"]


def test_client_caches_stay_bounded(make_limiter, clock):
    limiter = make_limiter(clock=clock)
    core = getattr(limiter, "limiter", limiter)._core
    core.bucket_cache_size = 5
    rpm = [Limit.per_minute("rpm", 10)]
    for i in range(12):
        with limiter.acquire(f"k{i}", "gpt", rpm, consume={"rpm": 1}):
            pass
    assert len(core._tats) <= 5 and len(core._seen) <= 5 and len(core._configs) <= 5
    assert ("k11", "gpt") in core._tats  # the newest stay
