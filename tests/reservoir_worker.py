"""A worker for the multi-process reservoir tests: acquires on one key with reservoirs on until a deadline,
counting each admission in shared memory (so a killed worker's count survives it). A module of its own so
spawned processes can import it."""

from __future__ import annotations

import time
from typing import Any


from zae_limiter import RateLimitExceeded, SyncRateLimiter

RESERVOIR_SECONDS = 0.3


def work(endpoint_url: str, table_name: str, entity_id: str, seconds: float, admitted: Any, started: Any) -> None:
    limiter = SyncRateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url,
                              reservoir_seconds=RESERVOIR_SECONDS)
    started.set()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                with limiter.acquire(entity_id, "api", consume={"req": 1}):
                    with admitted.get_lock():
                        admitted.value += 1
            except RateLimitExceeded:
                time.sleep(0.002)
    finally:
        limiter.close()
