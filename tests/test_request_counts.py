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
    limiter = make_limiter(clock=clock, bucket_cache_size=5)
    core = getattr(limiter, "limiter", limiter)._core
    rpm = [Limit.per_minute("rpm", 10)]
    for i in range(12):
        with limiter.acquire(f"k{i}", "gpt", rpm, consume={"rpm": 1}):
            pass
    assert len(core.views) <= 5 and len(core.configs) <= 5
    assert ("k11", "gpt") in core.views  # the newest stay


def test_a_write_in_flight_makes_concurrent_acquires_wait_then_use_the_commuting_form(clock):
    """Two acquires of one process on an idle bucket. The second waits for the first's idle-form write
    (two idle-form writes do not commute: one would fail and be sent again), then uses the busy form,
    whose additions commute with every other busy-form write in flight."""
    from zae_limiter import RateLimiterUnavailable
    from zae_limiter.core.calls import Await
    from zae_limiter.core.config import StoredConfig
    from zae_limiter.state.limiter_core import LimiterCore

    def core_with_limits() -> LimiterCore:
        core = LimiterCore("t", clock=clock, config_cache_seconds=60)
        core.configs.seed("k", "gpt", StoredConfig(None, (Limit.per_minute("tpm", 6_000_000),), None))
        return core

    core = core_with_limits()
    first = core.acquire("k", "gpt", None, {"tpm": 1_000})
    first_call = next(first)
    assert "#b0 = :k0" in first_call.request["UpdateExpression"]  # idle form: the bucket looks full
    second = core.acquire("k", "gpt", None, {"tpm": 1_000})
    waiting = next(second)
    assert isinstance(waiting, Await)  # it waits, without polling
    landed = first_call.request["ExpressionAttributeValues"][":k0"]
    with pytest.raises(StopIteration):
        first.send({"Attributes": {"b_tpm": landed}})  # the first write lands...
    second_call = second.send(None)  # ...which opens the gate
    assert "#b0 = #b0 + :k0" in second_call.request["UpdateExpression"]  # busy form: commutes

    core = core_with_limits()  # a write that does not land leaves no prediction and no waiter behind
    first = core.acquire("k", "gpt", None, {"tpm": 1_000})
    next(first)
    with pytest.raises(RateLimiterUnavailable):
        first.throw(RateLimiterUnavailable("gone"))
    assert core.expected_tats("k", "gpt") == core.known_tats("k", "gpt") == {}
    assert "#b0 = :k0" in next(core.acquire("k", "gpt", None, {"tpm": 1_000})).request["UpdateExpression"]


def test_by_default_a_rejection_asks_dynamodb_so_tokens_given_back_elsewhere_count(make_limiter, clock):
    """Local rejection is opt-in: a view of an exhausted bucket goes stale the moment another client gives
    tokens back, and the default must admit what the shared bucket holds."""
    one, other = make_limiter(clock=clock), make_limiter(clock=clock)
    rpm = [Limit.per_minute("rpm", 2)]
    with pytest.raises(RuntimeError):
        with other.acquire("k", "gpt", rpm, consume={"rpm": 2}):  # takes both tokens...
            with pytest.raises(RateLimitExceeded):
                with one.acquire("k", "gpt", rpm, consume={"rpm": 1}):  # `one` sees it exhausted
                    pass
            raise RuntimeError("the work failed")  # ...and gives them back
    with one.acquire("k", "gpt", rpm, consume={"rpm": 2}):  # at the same instant: both are there
        pass


def test_an_opted_in_local_rejection_only_refuses_within_its_window(make_limiter, clock):
    """The documented bound of `reject_cache_seconds`: for that long, tokens another client gave back
    may be refused; never longer, and nothing is ever admitted from the view."""
    import time

    one, other = make_limiter(clock=clock, reject_cache_seconds=0.2), make_limiter(clock=clock)
    rpm = [Limit.per_minute("rpm", 2)]
    with pytest.raises(RuntimeError):
        with other.acquire("k", "gpt", rpm, consume={"rpm": 2}):
            with pytest.raises(RateLimitExceeded):
                with one.acquire("k", "gpt", rpm, consume={"rpm": 1}):
                    pass
            raise RuntimeError("the work failed")
    with pytest.raises(RateLimitExceeded) as raised:  # within the window: refused from the view
        with one.acquire("k", "gpt", rpm, consume={"rpm": 1}):
            pass
    assert raised.value.decided_locally
    time.sleep(0.25)
    with one.acquire("k", "gpt", rpm, consume={"rpm": 2}):  # past it, DynamoDB decides: both are there
        pass


def test_an_async_local_rejection_still_yields_to_the_event_loop(endpoint_url, table_name):
    import asyncio

    from zae_limiter import RateLimiter

    async def scenario():
        limiter = RateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url, reject_cache_seconds=30)
        rpm = [Limit.per_minute("rpm", 1)]
        async with limiter.acquire("k", "gpt", rpm, consume={"rpm": 1}):
            pass
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        for _ in range(50):  # a caller retrying in a tight loop, refused locally every time
            with pytest.raises(RateLimitExceeded):
                async with limiter.acquire("k", "gpt", rpm, consume={"rpm": 1}):
                    pass
        task.cancel()
        await limiter.close()
        return ticks

    assert asyncio.run(scenario()) >= 40  # the other task ran while the loop kept refusing
