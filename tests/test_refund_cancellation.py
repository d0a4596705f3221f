"""A cancellation while an async lease is being refunded (lease.py, transport/deferral.py): the refund
runs to its end in the caller's task, on the lean data plane and on the boto3 path, for one bucket and
for a cascade's two; the caller's own exception is what it sees, and the refund has landed when it does.

Each test cancels the caller while its refund is on its way (held by the fault proxy, or connecting),
and reads the buckets back from the server the moment the caller's task ends."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from botocore.config import Config

from fault_proxy import FaultProxy
from zae_limiter import Limit, RateLimiter
from zae_limiter.core import schema
from zae_limiter.local import ensure_table
from zae_limiter.transport import connections
from zae_limiter.transport.clients import make_client

LIMITS = [Limit.per_minute("rpm", 10)]
PATIENT = Config(read_timeout=3, retries={"total_max_attempts": 3})


class Boom(Exception):
    pass


def _table(endpoint_url: str) -> str:
    table = f"refcancel_{uuid.uuid4().hex[:8]}"
    ensure_table(table, endpoint_url=endpoint_url, region="us-east-1")
    return table


def _counters(endpoint_url: str, table: str, entity: str, resource: str) -> dict:
    client = make_client("dynamodb", "us-east-1", endpoint_url)
    try:
        item = client.get_item(TableName=table, Key=schema.bucket_key(entity, resource), ConsistentRead=True)["Item"]
    finally:
        client.close()
    return schema.bucket_counters(item)


async def _cancelled_while_refunding(limiter: RateLimiter, resource: str, entity: str, before_raise, after: float) -> None:
    """Acquire, run `before_raise`, raise Boom; cancel the task `after` seconds into its refund."""
    refunding = asyncio.Event()

    async def work() -> None:
        async with limiter.acquire(entity, resource, LIMITS, consume={"rpm": 1}):
            before_raise()
            asyncio.get_running_loop().call_later(after, refunding.set)
            raise Boom("the work failed")

    task = asyncio.create_task(work())
    await refunding.wait()
    assert not task.done()
    task.cancel()
    with pytest.raises(Boom):
        await task


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "boto3"])
async def test_a_cancellation_while_the_refund_is_on_its_way_waits_for_it(endpoint_url, caplog, lean):
    table, resource = _table(endpoint_url), f"api-{uuid.uuid4().hex[:8]}"
    with FaultProxy(endpoint_url) as proxy:
        limiter = RateLimiter(table_name=table, region="us-east-1", endpoint_url=proxy.url, boto_config=PATIENT,
                              lean_hot_path=lean)
        with caplog.at_level(logging.ERROR, logger="zae_limiter"):
            # The refund's request reaches the server only 0.6 s after it left; the cancel comes at 0.2 s.
            await _cancelled_while_refunding(
                limiter, resource, "k", lambda: proxy.fail("UpdateItem", "slow", times=1, seconds=0.6), after=0.2)
            assert _counters(endpoint_url, table, "k", resource) == {"rpm": 0}  # taken once, given back once
        assert "refund of a lease" not in caplog.text
        assert proxy.operations("slow") == ["UpdateItem"]
        await limiter.close()


async def test_a_cascade_refund_cancelled_on_its_way_gives_back_to_both_buckets(endpoint_url):
    table, resource = _table(endpoint_url), f"api-{uuid.uuid4().hex[:8]}"
    with FaultProxy(endpoint_url) as proxy:
        limiter = RateLimiter(table_name=table, region="us-east-1", endpoint_url=proxy.url, boto_config=PATIENT)
        await limiter.create_entity("org")
        await limiter.create_entity("k", parent_id="org", cascade=True)
        await limiter.set_limits("org", LIMITS, resource=resource)
        await _cancelled_while_refunding(
            limiter, resource, "k", lambda: proxy.fail("UpdateItem", "slow", times=2, seconds=0.6), after=0.2)
        assert _counters(endpoint_url, table, "k", resource) == {"rpm": 0}
        assert _counters(endpoint_url, table, "org", resource) == {"rpm": 0}
        assert proxy.operations("slow") == ["UpdateItem", "UpdateItem"]  # the two refunds, each once
        await limiter.close()


async def test_a_refund_cancelled_while_it_connects_is_sent_once_it_has_connected(endpoint_url, monkeypatch, caplog):
    table, resource = _table(endpoint_url), f"api-{uuid.uuid4().hex[:8]}"
    with FaultProxy(endpoint_url) as proxy:
        limiter = RateLimiter(table_name=table, region="us-east-1", endpoint_url=proxy.url, boto_config=PATIENT)
        connect = connections.AsyncConnection._connect.__func__
        opened = []

        async def slow_connect(cls, *args):
            opened.append(args)
            await asyncio.sleep(0.4)  # where the cancellation arrives: nothing has left yet
            return await connect(cls, *args)

        def retire_the_pooled_connection() -> None:
            # Its idle time is over, so the refund opens a connection of its own (slowly).
            later = connections.monotonic() + connections.MAX_IDLE_SECONDS + 1
            monkeypatch.setattr(connections, "monotonic", lambda: later)
            monkeypatch.setattr(connections.AsyncConnection, "_connect", classmethod(slow_connect))

        with caplog.at_level(logging.ERROR, logger="zae_limiter"):
            await _cancelled_while_refunding(limiter, resource, "k", retire_the_pooled_connection, after=0.2)
            assert _counters(endpoint_url, table, "k", resource) == {"rpm": 0}
        assert len(opened) == 2  # the connect the cancellation cut, then the one the refund was sent on
        assert proxy.operations().count("UpdateItem") == 2  # the acquire, and the refund once
        assert "refund of a lease" not in caplog.text
        await limiter.close()


async def test_a_call_cut_off_before_it_left_is_sent_again_a_bounded_number_of_times():
    """On CPython before 3.11.3 a connect timeout in a task already cancelled surfaces as CancelledError
    (gh-102780): without a bound, such a refund would be sent again forever."""
    from zae_limiter import RateLimiterUnavailable
    from zae_limiter.core.calls import Call
    from zae_limiter.transport import deferral

    class CutOff:
        calls = 0

        async def call(self, call):
            self.calls += 1
            raise asyncio.CancelledError()

    transport = CutOff()
    with deferral.deferring(), pytest.raises(RateLimiterUnavailable, match="cut off 4 times before it left"):
        await deferral.call_whole(transport, Call("UpdateItem", {}))
    assert transport.calls == deferral.RESENDS + 1 == 4
