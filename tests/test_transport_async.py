"""The async side of the transport: refreshable credentials as they expire (never refreshed on the event
loop), event loops in several threads sharing one data plane, close() from another thread, and a
cancellation that arrives while a lease is being refunded (more in test_refund_cancellation.py)."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials, RefreshableCredentials

from fault_proxy import FaultProxy
from scripted_server import ScriptedDynamoDB
from test_dataplane import GET, UPDATE
from zae_limiter import Limit, RateLimiter
from zae_limiter.core import schema
from zae_limiter.transport.clients import make_client
from zae_limiter.transport.dataplane import DataPlane
from zae_limiter.local import ensure_table
from zae_limiter.stats import RequestStats

# botocore refreshes temporary credentials 15 minutes before they expire (advisory) and blocks for a
# refresh in the last 10 (mandatory): botocore/credentials.py, _DEFAULT_ADVISORY_REFRESH_TIMEOUT.
ADVISORY = 15 * 60


class WallClock:
    """A time_fetcher for botocore's credentials that moves `step` on every reading."""

    def __init__(self, step: float = 0.0) -> None:
        self.now = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
        self.step = timedelta(seconds=step)

    def __call__(self) -> datetime:
        now = self.now
        self.now += self.step
        return now


class STS:
    """Issues numbered keys valid for an hour from the clock's now, and records where each refresh ran."""

    def __init__(self, clock: WallClock) -> None:
        self.clock, self.issued, self.where = clock, 0, []

    def __call__(self) -> dict[str, str]:
        try:
            asyncio.get_running_loop()
            self.where.append("event loop")
        except RuntimeError:
            self.where.append(threading.current_thread().name)
        self.issued += 1
        self.expiry = self.clock.now + timedelta(hours=1)
        return {"access_key": f"AK{self.issued}", "secret_key": "secret", "token": f"token-{self.issued}",
                "expiry_time": self.expiry.isoformat()}


def keys_used(server: ScriptedDynamoDB) -> list[str]:
    return [re.search(r"Credential=([^/]+)/", r["headers"]["Authorization"]).group(1) for r in server.received]


def credentials_of(kind: str, clock: WallClock, sts: STS):
    if kind == "assume-role":  # botocore's AssumeRoleProvider and SSOProvider hand out these
        return DeferredRefreshableCredentials(refresh_using=sts, method="assume-role", time_fetcher=clock)
    first = sts()  # IMDS and container credentials: fetched once up front, then refreshed
    return RefreshableCredentials(first["access_key"], first["secret_key"], first["token"], sts.expiry, sts,
                                  "container-role", time_fetcher=clock)


@pytest.mark.parametrize("kind", ["assume-role", "instance"])
@pytest.mark.parametrize("api", ["sync", "async"])
def test_refreshable_credentials_are_refreshed_as_they_expire(api, kind):
    clock = WallClock()
    sts = STS(clock)
    with ScriptedDynamoDB() as server:
        plane = DataPlane(server.url, "us-east-1", credentials_of(kind, clock, sts), stats=RequestStats())

        def call() -> None:
            plane.call(GET) if api == "sync" else asyncio.run(plane.call_async(GET))

        call()
        clock.now += timedelta(minutes=30)
        call()  # 30 minutes left: no refresh yet
        clock.now += timedelta(minutes=21)  # 9 minutes left: inside the mandatory window
        call()
        call()
        assert keys_used(server) == ["AK1", "AK1", "AK2", "AK2"]
        if api == "async":
            assert "event loop" not in sts.where  # refreshing is network I/O: off the loop
        plane.close()


@pytest.mark.parametrize("kind", ["assume-role", "instance"])
def test_the_async_path_never_refreshes_on_the_event_loop_even_at_the_boundary(kind):
    """The clock moves a second on every reading, and the expiry sits half a second past the advisory
    boundary: a check that says "no refresh due" followed by botocore's own check reading the clock
    again would refresh inside that second reading, on the loop."""
    clock = WallClock()
    sts = STS(clock)
    credentials = credentials_of(kind, clock, sts)
    with ScriptedDynamoDB() as server:
        plane = DataPlane(server.url, "us-east-1", credentials, stats=RequestStats())

        async def scenario() -> None:
            await plane.call_async(GET)  # the first keys, fetched off the loop
            clock.now = sts.expiry - timedelta(seconds=ADVISORY + 0.5)
            clock.step = timedelta(seconds=1)
            for _ in range(4):
                await plane.call_async(GET)

        asyncio.run(scenario())
        assert "event loop" not in sts.where
        assert sts.issued == 2 and keys_used(server)[-1] == "AK2"  # refreshed once the window opened
        plane.close()


def test_event_loops_in_several_threads_share_one_data_plane():
    with ScriptedDynamoDB() as server:
        plane = DataPlane(server.url, "us-east-1", credentials_of("instance", WallClock(), STS(WallClock())), stats=RequestStats())
        errors: list[BaseException] = []

        def worker() -> None:
            async def burst() -> None:
                await asyncio.gather(*(plane.call_async(GET) for _ in range(4)))

            try:
                for _ in range(5):  # a new loop each time, as repeated asyncio.run() calls make
                    asyncio.run(burst(), debug=True)  # debug: a cross-thread call on a loop raises
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert server.targets() == ["GetItem"] * 80
        plane.close()


def test_close_from_another_thread_lets_each_loop_close_its_own_connections():
    with ScriptedDynamoDB() as server:
        plane = DataPlane(server.url, "us-east-1", credentials_of("instance", WallClock(), STS(WallClock())), stats=RequestStats())
        loop = asyncio.new_event_loop()
        loop.set_debug(True)  # asyncio raises on a transport touched from a thread not its loop's
        problems: list[dict] = []
        loop.set_exception_handler(lambda _, context: problems.append(context))
        thread = threading.Thread(target=loop.run_forever)
        thread.start()
        try:
            assert asyncio.run_coroutine_threadsafe(plane.call_async(GET), loop).result(5) == {}
            (idle,) = plane._async._pools[loop]
            plane.close()  # from this thread, while the loop runs in its own
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0.1), loop).result(5)
            assert idle.lost and idle.transport.is_closing()  # closed by its loop
            assert asyncio.run_coroutine_threadsafe(plane.call_async(UPDATE), loop).result(5) == {}
            assert server.connections == 2 and problems == []
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            plane.close()
            loop.close()


def test_a_closed_loops_idle_connections_are_closed_by_the_next_loop():
    with ScriptedDynamoDB() as server:
        plane = DataPlane(server.url, "us-east-1", credentials_of("instance", WallClock(), STS(WallClock())), stats=RequestStats())
        asyncio.run(plane.call_async(GET))
        (old_loop,) = plane._async._pools
        (idle,) = plane._async._pools[old_loop]
        asyncio.run(plane.call_async(GET))
        assert old_loop not in plane._async._pools and idle.sock.fileno() == -1  # our socket, closed by us
        plane.close()


class Boom(Exception):
    pass


async def test_a_cancellation_during_the_refund_never_replaces_the_callers_exception(endpoint_url, caplog):
    table = f"cancel_{uuid.uuid4().hex[:8]}"
    ensure_table(table, endpoint_url=endpoint_url, region="us-east-1")
    resource = f"api-{uuid.uuid4().hex[:8]}"
    limits = [Limit.per_minute("rpm", 10)]
    with FaultProxy(endpoint_url) as proxy:
        limiter = RateLimiter(table_name=table, region="us-east-1", endpoint_url=proxy.url,
                              boto_config=Config(read_timeout=1, retries={"total_max_attempts": 3}))
        refund_sent = asyncio.Event()

        async def work() -> None:
            async with limiter.acquire("k", resource, limits, consume={"rpm": 1}):
                proxy.fail("UpdateItem", "stall", times=1)  # the refund lands; its answer is held
                asyncio.get_running_loop().call_later(0.3, refund_sent.set)
                raise Boom("the work failed")

        with caplog.at_level(logging.ERROR, logger="zae_limiter"):
            task = asyncio.create_task(work())
            await refund_sent.wait()
            task.cancel()  # while the refund waits for its answer
            with pytest.raises(Boom):  # once the refund has ended, at its read timeout
                await task
        assert f"refund of a lease on k/{resource} failed" in caplog.text and "not sent again" in caplog.text
        await limiter.close()
    client = make_client("dynamodb", "us-east-1", endpoint_url)
    item = client.get_item(TableName=table, Key=schema.bucket_key("k", resource), ConsistentRead=True)["Item"]
    client.close()
    assert schema.bucket_counters(item) == {"rpm": 0}  # taken once, given back once
    assert proxy.operations().count("UpdateItem") == 2
