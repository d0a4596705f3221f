"""A load-test worker: acquires, adjusts and refunds on one bucket until a deadline, and reports exactly
what its leases hold at the end. A module of its own so that spawned processes can import it."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any


from zae_limiter import Limit, RateLimiter, RateLimitExceeded, RateLimiterUnavailable, SyncRateLimiter

# `req` is only ever taken and given back; `tok` is also adjusted upwards, into debt.
LIMITS = [Limit("req", 60, 1, 3600), Limit("tok", 1200, 1, 3600)]
MAX_RAISE = 5  # the largest upward adjust of one lease, in tokens
# After a rejection, a breath before trying again (refunds of others may make room): spinning on local
# rejections would only take the CPU from the server and the other workers.
REJECTED_PAUSE = 0.002


class WorkFailed(Exception):
    """The block's own failure: the lease refunds everything it holds."""


class Tally:
    def __init__(self) -> None:
        self.admitted = 0  # acquires admitted (the bucket's `n` counts them)
        self.rejected = 0
        self.refunds = 0
        self.adjusts = 0
        self.unavailable = 0
        self.held = {"req": 0, "tok": 0}  # thousandths the worker's leases hold at the end

    def settle(self, consumed: dict[str, float]) -> None:
        for name, tokens in consumed.items():
            self.held[name] += round(tokens * 1000)

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def plan(rng: random.Random) -> tuple[dict[str, float], str, float]:
    """What one lease does: its consumption, then one of keep / raise / lower / fail."""
    tokens = rng.randint(1, 40) + rng.choice([0, 0.5, 0.125])
    action = rng.choices(["keep", "raise", "lower", "fail"], [3, 3, 2, 2])[0]
    delta = {"raise": rng.uniform(0.001, MAX_RAISE), "lower": -rng.uniform(0, tokens)}.get(action, 0.0)
    return {"req": 1, "tok": tokens}, action, round(delta, 3)


def work_sync(endpoint_url: str, table_name: str, entity_id: str, seconds: float, seed: int) -> dict[str, Any]:
    rng, tally = random.Random(seed), Tally()
    limiter = SyncRateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            consume, action, delta = plan(rng)
            lease = None
            try:
                with limiter.acquire(entity_id, "api", consume=consume) as lease:
                    tally.admitted += 1
                    if delta:
                        lease.adjust(tok=delta)
                        tally.adjusts += 1
                    if action == "fail":
                        raise WorkFailed()
            except RateLimitExceeded:
                tally.rejected += 1
                time.sleep(REJECTED_PAUSE)
            except WorkFailed:
                tally.refunds += 1
            except RateLimiterUnavailable:
                tally.unavailable += 1
            if lease is not None:
                tally.settle(lease.consumed)
    finally:
        limiter.close()
    return tally.as_dict()


def work_async(endpoint_url: str, table_name: str, entity_id: str, seconds: float, seed: int) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        rng, tally = random.Random(seed), Tally()
        limiter = RateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url)
        deadline = time.monotonic() + seconds

        async def one() -> None:
            consume, action, delta = plan(rng)
            lease = None
            try:
                async with limiter.acquire(entity_id, "api", consume=consume) as lease:
                    tally.admitted += 1
                    if delta:
                        await lease.adjust(tok=delta)
                        tally.adjusts += 1
                    if action == "fail":
                        raise WorkFailed()
            except RateLimitExceeded:
                tally.rejected += 1
                await asyncio.sleep(REJECTED_PAUSE)
            except WorkFailed:
                tally.refunds += 1
            except RateLimiterUnavailable:
                tally.unavailable += 1
            if lease is not None:
                tally.settle(lease.consumed)

        async def task() -> None:
            while time.monotonic() < deadline:
                await one()

        try:
            await asyncio.gather(*(task() for _ in range(4)))  # four leases in flight at a time
        finally:
            await limiter.close()
        return tally.as_dict()

    return asyncio.run(run())


def work(kind: str, *args: Any) -> dict[str, Any]:
    result = (work_sync if kind == "sync" else work_async)(*args)
    result["kind"] = kind
    return result
