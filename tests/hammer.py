"""Workers for the concurrency tests: each hammers one bucket until a deadline and counts admissions.
A module of its own so that spawned processes can import it."""

from __future__ import annotations

import time

from botocore.config import Config

from zae_limiter import BucketContention, Limit, RateLimitExceeded, SyncRateLimiter

# 40 tokens, refilled at one per hour: a run of a few seconds can add at most a sliver of one token.
HAMMERED = Limit("req", 40, 1, 3600)
# The tests' own boto3 clients, which look at what the limiters wrote (never a limiter under test:
# those run on the defaults users get, the 2 s read timeout included).
HARNESS = Config(connect_timeout=10, read_timeout=60, retries={"mode": "standard", "total_max_attempts": 6})


# A refusal that asks to wait this long means the bucket is spent for the run (the hammered limits
# refill one token an hour): the worker stops there, however fast or slow the machine got there.
SPENT_SECONDS = 60.0


def hammer(endpoint_url: str, table_name: str, entity_id: str, seconds: float, limits: list[Limit] | None = None) -> tuple[int, int]:
    """Acquire until a refusal says the bucket is spent (or `seconds` pass, a safety net on a machine
    too slow to get there). Returns (admitted, rejected)."""
    limiter = SyncRateLimiter(
        table_name=table_name, region="us-east-1", endpoint_url=endpoint_url
    )
    admitted = rejected = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                with limiter.acquire(entity_id, "api", limits, consume={"req": 1}):
                    admitted += 1
            except RateLimitExceeded as refused:
                rejected += 1
                if refused.retry_after_seconds >= SPENT_SECONDS:
                    break
            except BucketContention:
                pass  # nothing was taken: as a caller would, try again
    finally:
        limiter.close()
    return admitted, rejected
