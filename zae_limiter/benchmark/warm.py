"""Client CPU of a warm acquire with no socket: the share of an acquire's CPU that is our own code run warm.

    python -m zae_limiter.benchmark.warm [--acquires N] [--limits 1|3]

On the embedded DynamoDB, one SyncRateLimiter acquires until its caches are warm; then the data plane's
exchange is replaced by the answer it last received (recorded on the way), so the same acquire runs
again and again with every decision, the signing, the JSON and the framing of the request, and no
socket. The figure is `time.process_time()` per acquire, best of five stretches. Against the
benchmark's CPU per acquire (docs/benchmarks.md), the difference is what the exchange costs: the system
calls, and our code run cold after each wait for the emulator (another process on the same CPUs).
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any, Sequence

from .. import Limit, SyncRateLimiter
from ..local import LocalDynamoDB, ensure_table

LIMITS = {
    1: ([Limit.per_minute("rpm", 10_000_000)], {"rpm": 1}),
    3: ([Limit.per_minute("rpm", 10_000_000), Limit.per_minute("tpm", 1_000_000_000), Limit.per_day("rpd", 1_000_000_000)],
        {"rpm": 1, "tpm": 500, "rpd": 1}),
}


WARM_UP = 100


def measure(endpoint_url: str, acquires: int, limit_count: int, table: str | None = None) -> float:
    """Microseconds of client CPU per warm acquire with the exchange replaced by its recorded answer.
    Of all the acquires, only the WARM_UP ones and the recorded one reach the table."""
    limits, consume = LIMITS[limit_count]
    table = table or f"warm_{uuid.uuid4().hex[:8]}"
    ensure_table(table, endpoint_url=endpoint_url, region="us-east-1")
    with SyncRateLimiter(table_name=table, endpoint_url=endpoint_url, region="us-east-1") as limiter:
        limiter.set_limits("api-key", limits, resource="gpt")
        for _ in range(WARM_UP):
            with limiter.acquire("api-key", "gpt", consume=consume):
                pass
        connections = limiter._open().dataplane._sync  # the lean data plane's sync connections
        real, recorded = connections.exchange, []

        def record(headers: Any, body: bytes) -> Any:
            recorded.append(real(headers, body))
            return recorded[-1]

        connections.exchange = record
        with limiter.acquire("api-key", "gpt", consume=consume):
            pass
        connections.exchange = lambda headers, body: recorded[-1]
        best = float("inf")
        for _ in range(5):
            started = time.process_time()
            for _ in range(acquires):
                with limiter.acquire("api-key", "gpt", consume=consume):
                    pass
            best = min(best, (time.process_time() - started) / acquires * 1e6)
        connections.exchange = real
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zae_limiter.benchmark.warm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--acquires", type=int, default=3_000, help="acquires per stretch (default 3000)")
    parser.add_argument("--limits", type=int, choices=sorted(LIMITS), default=1, help="limits per acquire (default 1)")
    args = parser.parse_args(argv)
    if args.acquires < 1:
        parser.error("--acquires must be at least 1")
    with LocalDynamoDB() as url:
        figure = measure(url, args.acquires, args.limits)
    print(f"warm acquire, {args.limits} limit(s), no socket: {figure:.0f} µs of client CPU (best of 5 x {args.acquires})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
