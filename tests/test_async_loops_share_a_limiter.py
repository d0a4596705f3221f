"""One async RateLimiter shared by several event loops in several threads, as a program does that calls
`asyncio.run` from worker threads: every acquire is charged exactly once, none fails, and nothing of one
loop (a connection, a batch's future, a deadline's timer) is touched from another. Counted against the
definition: the bucket's consumed counter moves by exactly what was admitted."""

from __future__ import annotations

import asyncio
import threading

import pytest

from zae_limiter import Limit, RateLimiter
from zae_limiter.core import schema

pytestmark = pytest.mark.server

THREADS, LOOPS, TASKS, ACQUIRES = 3, 2, 8, 3
# Far more than the test takes: every acquire must be admitted.
LIMITS = [Limit.per_minute("rpm", 1_000_000)]


def test_event_loops_in_several_threads_share_one_async_limiter(endpoint_url, table_name, dynamodb):
    limiter = RateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url)
    errors: list[BaseException] = []
    problems: list[dict] = []
    admitted = []
    lock = threading.Lock()

    async def burst() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: problems.append(context))

        async def task() -> None:
            for _ in range(ACQUIRES):
                async with limiter.acquire("shared", "gpt", LIMITS, consume={"rpm": 1}):
                    with lock:
                        admitted.append(1)

        # Concurrent tasks on one bucket ride together on one write (combined writes, on by default).
        await asyncio.gather(*(task() for _ in range(TASKS)))

    def worker() -> None:
        try:
            for _ in range(LOOPS):  # a new loop each time, as repeated asyncio.run() calls make
                asyncio.run(burst(), debug=True)  # debug: asyncio raises on a loop touched from another thread
        except BaseException as error:
            errors.append(error)

    try:
        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        asyncio.run(limiter.close())
    assert errors == [] and problems == []
    assert len(admitted) == THREADS * LOOPS * TASKS * ACQUIRES
    item = dynamodb.get_item(TableName=table_name, Key=schema.bucket_key("shared", "gpt"), ConsistentRead=True)["Item"]
    assert schema.bucket_counters(item) == {"rpm": len(admitted) * 1000}  # counters in thousandths
