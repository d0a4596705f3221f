"""Combined writes against the embedded server: 32 concurrent acquires of one bucket from one client,
sync (threads) and async (tasks), on the default configuration. Writes combine where a bucket is idle
(full) when written, as under a limit far above the load; expected values come from the definition: a
full bucket admits every take that fits, its consumed counters move by exactly what was admitted, and a
bucket another client has drained admits exactly what it has left, whoever wrote together."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import FakeClock, transport_of
from zae_limiter import Limit, RateLimiter, RateLimitExceeded, SyncRateLimiter
from zae_limiter.core import schema

pytestmark = pytest.mark.server

RPM = Limit.per_minute("rpm", 10_000_000)  # far above the load: every write finds the bucket full
TOK = Limit.per_minute("tok", 70_000_000)  # a thousandth costs 0.857... ns: each member's cost rounds up
REQ = Limit("req", 40, 1, 3600)  # 40 tokens, one more an hour
WORKERS = 32
EACH = 20
KEY = ("k", "api")
T0 = 1_800_000_000 * 10**9


class StepClock:
    """A millisecond later at every reading: a bucket under RPM is full again at each write, on every
    run and at any machine speed."""

    def __init__(self) -> None:
        self._readings = itertools.count()

    def __call__(self) -> int:
        return T0 + next(self._readings) * 1_000_000


def counters(dynamodb, table_name) -> tuple[dict[str, int], int]:
    item = dynamodb.get_item(TableName=table_name, Key=schema.bucket_key(*KEY), ConsistentRead=True)["Item"]
    return schema.bucket_counters(item), int(item[schema.ACQUIRES]["N"])


def hold_first_write_until_others_joined(limiter, joined: int) -> threading.Event:
    """Keep the next UpdateItem from going out until `joined` acquires ride on the batch queued behind
    it (at most 10 s), so the test does not depend on how the threads happen to be scheduled. The
    event returned is set if they did."""
    views = limiter._core.views
    held, reached = threading.Event(), threading.Event()

    def observe(call) -> None:
        if call.operation != "UpdateItem" or held.is_set():
            return
        held.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            batch = views._batches.get(KEY)
            if batch is not None and batch.members >= joined:
                reached.set()
                return
            time.sleep(0.005)

    transport_of(limiter).observers.append(observe)
    return reached


CONSUME = {"rpm": 1, "tok": 3}


def test_threads_of_one_client_write_together_and_count_every_acquire(endpoint_url, table_name, dynamodb):
    with SyncRateLimiter(table_name, "us-east-1", endpoint_url, clock=StepClock()) as limiter:
        with limiter.acquire(*KEY, [RPM, TOK], consume=CONSUME):
            pass  # the bucket is known: every acquire below is a warm one
        limiter.stats.reset()
        reached = hold_first_write_until_others_joined(limiter, 16)

        def work(_: int) -> int:
            for _ in range(EACH):
                with limiter.acquire(*KEY, [RPM, TOK], consume=CONSUME):
                    pass
            return EACH

        with ThreadPoolExecutor(WORKERS) as pool:
            admitted = sum(pool.map(work, range(WORKERS)))
        stats = limiter.stats.snapshot()
    assert reached.is_set()
    assert admitted == WORKERS * EACH
    assert stats["combined_acquires"] >= 15
    assert stats["requests"]["UpdateItem"] + stats["combined_acquires"] == admitted  # one write per batch
    used, acquires = counters(dynamodb, table_name)
    assert used == {"rpm": (admitted + 1) * 1000, "tok": (admitted + 1) * 3000}
    assert acquires == admitted + 1


def test_tasks_of_one_client_write_together_and_count_every_acquire(endpoint_url, table_name, dynamodb):
    async def run() -> tuple[int, dict]:
        limiter = RateLimiter(table_name, "us-east-1", endpoint_url, clock=StepClock())
        try:
            async with limiter.acquire(*KEY, [RPM, TOK], consume=CONSUME):
                pass
            limiter.stats.reset()

            async def work() -> int:
                for _ in range(EACH):
                    async with limiter.acquire(*KEY, [RPM, TOK], consume=CONSUME):
                        pass
                return EACH

            # The 32 tasks start in one batch of ready callbacks, all run before the loop polls its
            # sockets again: every one plans before the first write's answer can be read, so 30 of
            # them ride on the second write.
            results = await asyncio.gather(*(work() for _ in range(WORKERS)))
            return sum(results), limiter.stats.snapshot()
        finally:
            await limiter.close()

    admitted, stats = asyncio.run(run())
    assert admitted == WORKERS * EACH
    assert stats["combined_acquires"] >= 30
    assert stats["requests"]["UpdateItem"] + stats["combined_acquires"] == admitted
    used, acquires = counters(dynamodb, table_name)
    assert used == {"rpm": (admitted + 1) * 1000, "tok": (admitted + 1) * 3000}
    assert acquires == admitted + 1


def test_a_batch_refused_as_a_whole_admits_exactly_what_the_bucket_has_left(endpoint_url, table_name):
    """This client last saw the bucket full; another has since taken 35 of its 40 tokens. Ten acquires
    of this client then go at once: the first alone, nine riding together. Whatever the order, exactly
    5 are admitted: the combined write is refused, and each member decides from the returned item."""
    clock = FakeClock()
    with SyncRateLimiter(table_name, "us-east-1", endpoint_url, clock=clock) as limiter, \
            SyncRateLimiter(table_name, "us-east-1", endpoint_url, clock=clock) as other:
        with limiter.acquire(*KEY, [REQ], consume={"req": 1}):
            pass
        clock.advance(41 * 3600)  # full again, and this client's view says so
        with other.acquire(*KEY, [REQ], consume={"req": 35}):
            pass
        reached = hold_first_write_until_others_joined(limiter, 9)

        def once(_: int) -> bool:
            try:
                with limiter.acquire(*KEY, [REQ], consume={"req": 1}):
                    return True
            except RateLimitExceeded as refused:
                assert refused.retry_after_seconds > 0
                return False

        with ThreadPoolExecutor(10) as pool:
            admitted = sum(pool.map(once, range(10)))
        assert reached.is_set()
        assert admitted == 5
        assert limiter.stats.snapshot()["combined_acquires"] == 0  # the batch never landed
        assert other.available(*KEY, [REQ])["req"] == pytest.approx(0, abs=1e-9)


def test_concurrent_adjusts_of_one_bucket_take_their_turns_and_charge_exactly(endpoint_url, table_name, dynamodb):
    """A positive adjust is written in the idle or the busy form, as an acquire is, so it waits behind
    this client's idle-form write in flight. Before, 32 concurrent adjusts each guessed the form from a
    state the others kept changing (the benchmark's adjust cells: 2.4-2.6 requests per acquire, and
    adjusts failing with BucketContention). Holding the first adjust's request shows the others wait."""
    with SyncRateLimiter(table_name, "us-east-1", endpoint_url, clock=StepClock()) as limiter:
        with limiter.acquire(*KEY, [RPM, TOK], consume=CONSUME):
            pass
        held, holding, sent_while_held = threading.Event(), threading.Event(), []

        def observe(call) -> None:
            if call.operation != "UpdateItem" or "#n" in call.request["ExpressionAttributeNames"]:
                return  # an acquire (it counts acquires); adjusts do not
            if holding.is_set():
                sent_while_held.append(call)
            if held.is_set():
                return
            held.set()
            holding.set()
            time.sleep(0.3)  # long enough for every other thread's adjust to be sent, were it not waiting
            holding.clear()

        transport_of(limiter).observers.append(observe)
        barrier = threading.Barrier(8)

        def work(_: int) -> None:
            barrier.wait()
            with limiter.acquire(*KEY, [RPM, TOK], consume=CONSUME) as lease:
                lease.adjust(tok=5)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(work, range(8)))
        requests = limiter.stats.snapshot()["requests"]
    assert held.is_set() and not sent_while_held
    used, acquires = counters(dynamodb, table_name)
    assert used == {"rpm": 9 * 1000, "tok": 9 * 3000 + 8 * 5000} and acquires == 9
    assert requests["UpdateItem"] <= 1 + 8 + 8  # no adjust written twice: its form was never guessed wrong


class HeldTransport:
    """The limiter's async transport, with the next UpdateItem held until the test releases it."""

    def __init__(self, inner) -> None:
        self.inner, self.release, self.hold_next = inner, asyncio.Event(), True

    async def call(self, call):
        if call.operation == "UpdateItem" and self.hold_next:
            self.hold_next = False
            await self.release.wait()
        return await self.inner.call(call)

    def close(self) -> None:
        self.inner.close()


async def _cancel_while_queued(endpoint_url, table_name, cancel: str) -> dict:
    """A's write is held in flight; L queues behind it and leads a batch; M joins. Then `cancel` (L or
    M) is cancelled, A's write is let go, and every task left ends."""
    limiter = RateLimiter(table_name, "us-east-1", endpoint_url, clock=StepClock())
    try:
        async with limiter.acquire(*KEY, [RPM], consume={"rpm": 1}):
            pass
        held = HeldTransport(limiter._transport)
        limiter._transport = held

        async def one() -> bool:
            async with limiter.acquire(*KEY, [RPM], consume={"rpm": 1}):
                return True

        tasks = {}
        for name in "ALM":
            tasks[name] = asyncio.create_task(one())
            await asyncio.sleep(0.05)
        batch = limiter._core.views._batches[KEY]
        assert batch.members == 2  # L leads, M rides
        tasks[cancel].cancel()
        await asyncio.gather(tasks[cancel], return_exceptions=True)
        members_after = batch.members
        held.release.set()
        outcomes = await asyncio.gather(*(task for name, task in tasks.items() if name != cancel), return_exceptions=True)
        return {"outcomes": outcomes, "members_after": members_after, "stats": limiter.stats.snapshot(),
                "open_batch": KEY in limiter._core.views._batches}
    finally:
        await limiter.close()


def test_a_member_cancelled_before_the_write_is_built_is_neither_written_nor_counted(endpoint_url, table_name, dynamodb):
    result = asyncio.run(_cancel_while_queued(endpoint_url, table_name, cancel="M"))
    assert result["outcomes"] == [True, True]  # A and L
    assert result["members_after"] == 1
    used, acquires = counters(dynamodb, table_name)
    assert used == {"rpm": 3 * 1000} and acquires == 3  # the warm-up, A and L: what was admitted


def test_a_leader_cancelled_while_queued_lets_its_members_write_at_once(endpoint_url, table_name, dynamodb, monkeypatch):
    from zae_limiter.state import combined_writes

    monkeypatch.setattr(combined_writes, "RIDE_WAITS", 3)  # a member left waiting would fail in 3 s, not 120
    result = asyncio.run(_cancel_while_queued(endpoint_url, table_name, cancel="L"))
    assert result["outcomes"] == [True, True]  # A, and M by a write of its own
    assert not result["open_batch"]  # nobody can join the cancelled leader's batch any more
    used, acquires = counters(dynamodb, table_name)
    assert used == {"rpm": 3 * 1000} and acquires == 3
