"""Client CPU of a warm acquire with no socket: the share of an acquire's CPU that is our own code run warm.

    python -m zae_limiter.benchmark.warm [--acquires N] [--limits 1|3] [--pause SECONDS]

On the embedded DynamoDB, one SyncRateLimiter acquires until its caches are warm; then the data plane's
exchange is replaced by the answer it last received (recorded on the way), so the same acquire runs
again and again with every decision, the signing, the JSON and the framing of the request, and no
socket. The figure is `time.process_time()` per acquire, best of five stretches. Against the
benchmark's CPU per acquire (docs/benchmarks.md), the difference is what the exchange costs: the system
calls, and our code run cold after each wait for the emulator (another process on the same CPUs).

`--pause` measures that second part on its own: the same acquire, each after a `time.sleep` of that
long (the emulator answers in ~11 ms), and a fixed pure-Python loop that costs what the warm acquire
does, after the same pause. Only the work is timed, never the sleep. The loop's factor is the machine's
(caches and clocks after the process slept); the acquire's is that and the code and data it touches.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from .. import Limit, SyncRateLimiter
from ..local import LocalDynamoDB, ensure_table

LIMITS = {
    1: ([Limit.per_minute("rpm", 10_000_000)], {"rpm": 1}),
    3: ([Limit.per_minute("rpm", 10_000_000), Limit.per_minute("tpm", 1_000_000_000), Limit.per_day("rpd", 1_000_000_000)],
        {"rpm": 1, "tpm": 500, "rpd": 1}),
}


WARM_UP = 100
STRETCHES = 5


@contextmanager
def recorded_acquire(endpoint_url: str, limit_count: int, table: str | None = None) -> Iterator[Callable[[], None]]:
    """One acquire (with its release) on a warm limiter whose exchange answers with the answer it last
    received. Of all the acquires, only the WARM_UP ones and the recorded one reach the table."""
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

        def acquire() -> None:
            with limiter.acquire("api-key", "gpt", consume=consume):
                pass

        connections.exchange = record
        acquire()
        connections.exchange = lambda headers, body: recorded[-1]
        try:
            yield acquire
        finally:
            connections.exchange = real


def measure(endpoint_url: str, acquires: int, limit_count: int, table: str | None = None) -> float:
    """Microseconds of client CPU per warm acquire with the exchange replaced by its recorded answer."""
    with recorded_acquire(endpoint_url, limit_count, table) as acquire:
        return _best(acquire, acquires)


def pause_effect(endpoint_url: str, acquires: int, limit_count: int, pause: float, table: str | None = None) -> dict[str, float]:
    """Microseconds of client CPU: the warm acquire alone (best of STRETCHES) and each after a `pause`
    (median of STRETCHES), and the same for a pure-Python loop sized to the warm acquire's cost."""
    with recorded_acquire(endpoint_url, limit_count, table) as acquire:
        warm = _best(acquire, acquires)
        paused = _after_pause(acquire, acquires, pause)
    rounds = _rounds_costing(warm)
    loop = lambda: _reference(rounds)  # noqa: E731
    return {"acquire_warm": warm, "acquire_after_pause": paused,
            "loop_warm": _best(loop, acquires), "loop_after_pause": _after_pause(loop, acquires, pause)}


def _best(work: Callable[[], Any], times: int) -> float:
    best = float("inf")
    for _ in range(STRETCHES):
        started = time.process_time()
        for _ in range(times):
            work()
        best = min(best, (time.process_time() - started) / times * 1e6)
    return best


def _after_pause(work: Callable[[], Any], times: int, pause: float) -> float:
    stretches = []
    for _ in range(STRETCHES):
        spent = 0.0
        for _ in range(times):
            time.sleep(pause)
            started = time.process_time()
            work()
            spent += time.process_time() - started
        stretches.append(spent / times * 1e6)
    return statistics.median(stretches)


def _reference(rounds: int) -> int:
    """A fixed pure-Python workload: dict lookups and integer arithmetic, the stuff of an acquire."""
    table: dict[int, int] = {}
    for i in range(rounds):
        table[i & 63] = table.get(i & 63, 0) + i
    return len(table)


def _rounds_costing(microseconds: float) -> int:
    probe = 2_000
    cost = _best(lambda: _reference(probe), 200)
    return max(1, round(probe * microseconds / cost))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zae_limiter.benchmark.warm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--acquires", type=int, default=3_000, help="acquires per stretch (default 3000; with --pause, try 200)")
    parser.add_argument("--limits", type=int, choices=sorted(LIMITS), default=1, help="limits per acquire (default 1)")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="also measure each acquire after a sleep of this many seconds, e.g. 0.011 (default 0: off)")
    args = parser.parse_args(argv)
    if args.acquires < 1:
        parser.error("--acquires must be at least 1")
    if not 0 <= args.pause <= 1:
        parser.error("--pause must be between 0 and 1 second")
    with LocalDynamoDB() as url:
        if not args.pause:
            figure = measure(url, args.acquires, args.limits)
            print(f"warm acquire, {args.limits} limit(s), no socket: {figure:.0f} µs of client CPU (best of {STRETCHES} x {args.acquires})")
            return 0
        figures = pause_effect(url, args.acquires, args.limits, args.pause)
    warm, paused = figures["acquire_warm"], figures["acquire_after_pause"]
    loop_warm, loop_paused = figures["loop_warm"], figures["loop_after_pause"]
    print(f"warm acquire, {args.limits} limit(s), no socket: {warm:.0f} µs of client CPU (best of {STRETCHES} x {args.acquires})")
    print(f"the same acquire, each after a {args.pause:g} s pause: {paused:.0f} µs ({paused / warm:.2f}x; median of {STRETCHES} x {args.acquires})")
    print(f"a pure-Python loop of that warm cost ({loop_warm:.0f} µs), each after the same pause: {loop_paused:.0f} µs ({loop_paused / loop_warm:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
