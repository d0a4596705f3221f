"""Driving stretches of acquires and adding them up: the same code measures every system.

Standard library only, with no imports from outside this folder: the runner for the published package
loads this folder by path in its own virtual environment (see published_runner.py).

A *session* (`Session`) is one limiter ready to acquire: `op` (one acquire with the scenario's body; True
when refused as the scenario expects), `counts()` (cumulative requests per operation and consumed units)
and `close`. A *stretch* is `concurrency` threads (sync) or tasks (async) calling `op` until a time or a
count is spent; it is plain data: acquires, refusals, errors, CPU and wall seconds, every latency, the
requests it sent, and the wall-clock moments (time.time(), comparable across processes) at which its
first acquire started and its last one ended. A cell is measured as several stretches (rounds, and one
per process); `concurrent` adds up stretches that ran at the same time, `sequential` those that ran one
after the other, and `summary` turns the sum into the cell's figures.

CPU is `time.process_time()` of the measuring process only: the DynamoDB emulator is another process, so
its work never counts as client CPU.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable


@dataclass
class Session:
    op: Callable[[], Any]
    counts: Callable[[], dict]
    close: Callable[[], Any]


@dataclass(frozen=True)
class Settings:
    seconds: float | None = 4.0  # per timed cell; None: run `iterations` whatever it takes
    iterations: int | None = None  # per timed cell; with seconds too, whichever ends first
    warmup: int = 20  # acquires before measuring (at least one per worker)...
    warmup_seconds: float = 1.0  # ...unless this runs out first (a slow cell must not eat the budget)
    capacity_iterations: int = 20
    concurrencies: tuple[int, ...] = (1, 32)
    processes: tuple[int, ...] = (1,)  # cells also run from this many processes at once, on one bucket
    rounds: int = 4  # with more than one system: the slices per cell, alternating between the systems

    def to_dict(self) -> dict:
        return {
            "processes": list(self.processes),
            "seconds": self.seconds,
            "iterations": self.iterations,
            "warmup": self.warmup,
            "warmup_seconds": self.warmup_seconds,
            "capacity_iterations": self.capacity_iterations,
            "concurrencies": list(self.concurrencies),
            "rounds": self.rounds,
        }

    def warmup_budget(self, concurrency: int) -> tuple[float, int]:
        """Every worker opens its connection and the caches fill before the clocks run."""
        return self.warmup_seconds, max(self.warmup, concurrency)


class _Run:
    """What the workers of one stretch collect."""

    def __init__(self, concurrency: int) -> None:
        self.latencies: list[list[float]] = [[] for _ in range(concurrency)]
        self.rejected = 0
        self.errors = 0
        self.first_error: str | None = None
        self.first_start: float | None = None
        self.last_end: float | None = None
        self.lock = threading.Lock()

    def failed(self, error: BaseException) -> None:
        with self.lock:
            self.errors += 1
            if self.first_error is None:
                self.first_error = f"{type(error).__name__}: {error}"[:500]

    def refused(self) -> None:
        with self.lock:
            self.rejected += 1

    def moments(self, started: float, ended: float) -> None:
        if self.first_start is None or started < self.first_start:
            self.first_start = started
        if self.last_end is None or ended > self.last_end:
            self.last_end = ended


def _stop(counter: Any, iterations: int | None, deadline: float | None) -> bool:
    if iterations is not None and next(counter) >= iterations:
        return True
    return deadline is not None and time.perf_counter() >= deadline


def _acquire_once(op: Callable[[], Any], run: _Run, latencies: list[float]) -> None:
    started_at = time.time()
    started = time.perf_counter()
    try:
        if op():
            run.refused()
    except Exception as error:  # counted and shown: one timeout must not lose the whole run
        run.failed(error)
    ended = time.perf_counter()
    latencies.append(ended - started)
    with run.lock:
        run.moments(started_at, started_at + (ended - started))


def drive_threads(op: Callable[[], Any], concurrency: int, seconds: float | None, iterations: int | None) -> dict:
    """`concurrency` threads calling `op` on one shared limiter until the time or the count is spent."""
    run = _Run(concurrency)
    counter = itertools.count()  # next() on it is atomic under the GIL: an exact shared count
    gate = threading.Barrier(concurrency + 1)
    bounds: dict[str, float | None] = {}

    def worker(latencies: list[float]) -> None:
        gate.wait()
        deadline = bounds["deadline"]
        while not _stop(counter, iterations, deadline):
            _acquire_once(op, run, latencies)

    threads = [threading.Thread(target=worker, args=(lat,), daemon=True) for lat in run.latencies]
    for thread in threads:
        thread.start()
    # Threads are started and parked at the gate before the clocks start: their creation is not measured.
    cpu, wall = time.process_time(), time.perf_counter()
    bounds["deadline"] = wall + seconds if seconds is not None else None
    gate.wait()
    for thread in threads:
        thread.join()
    return _stretch(run, time.process_time() - cpu, time.perf_counter() - wall)


async def drive_tasks(op: Callable[[], Any], concurrency: int, seconds: float | None, iterations: int | None) -> dict:
    """`concurrency` tasks awaiting `op` on one shared limiter, in the running event loop."""
    run = _Run(concurrency)
    counter = itertools.count()
    cpu, wall = time.process_time(), time.perf_counter()
    deadline = wall + seconds if seconds is not None else None

    async def worker(latencies: list[float]) -> None:
        while not _stop(counter, iterations, deadline):
            started_at = time.time()
            started = time.perf_counter()
            try:
                if await op():
                    run.refused()
            except Exception as error:
                run.failed(error)
            ended = time.perf_counter()
            latencies.append(ended - started)
            run.moments(started_at, started_at + (ended - started))
            # Yield as a server's request handler would: an acquire answered without I/O (a local
            # rejection) must not let one task hold the loop while others' requests wait unread.
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(lat) for lat in run.latencies))
    return _stretch(run, time.process_time() - cpu, time.perf_counter() - wall)


def _stretch(run: _Run, cpu: float, wall: float) -> dict:
    return {
        "acquires": sum(len(worker) for worker in run.latencies),
        "rejected": run.rejected,
        "errors": run.errors,
        "first_error": run.first_error,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "first_start": run.first_start,
        "last_end": run.last_end,
        "latencies": [value for worker in run.latencies for value in worker],
        "counts": {"requests": {}, "read_units": 0.0, "write_units": 0.0},
    }


def counts_between(before: dict, after: dict) -> dict:
    requests = {
        name: after["requests"].get(name, 0) - before["requests"].get(name, 0)
        for name in after["requests"]
        if after["requests"].get(name, 0) != before["requests"].get(name, 0)
    }
    return {
        "requests": requests,
        "read_units": after.get("read_units", 0.0) - before.get("read_units", 0.0),
        "write_units": after.get("write_units", 0.0) - before.get("write_units", 0.0),
    }


def _add_counts(parts: Iterable[dict]) -> dict:
    requests: dict[str, int] = {}
    read_units = write_units = 0.0
    for counts in parts:
        for name, value in counts["requests"].items():
            requests[name] = requests.get(name, 0) + value
        read_units += counts["read_units"]
        write_units += counts["write_units"]
    return {"requests": requests, "read_units": read_units, "write_units": write_units}


def _span(first_start: float | None, last_end: float | None) -> list[float]:
    return [] if first_start is None or last_end is None else [last_end - first_start]


def _combine(stretches: list[dict], wall: Callable[[Iterable[float]], float], at_once: bool) -> dict:
    starts = [s["first_start"] for s in stretches if s["first_start"] is not None]
    ends = [s["last_end"] for s in stretches if s["last_end"] is not None]
    first_start, last_end = (min(starts) if starts else None), (max(ends) if ends else None)
    return {
        "acquires": sum(s["acquires"] for s in stretches),
        "rejected": sum(s["rejected"] for s in stretches),
        "errors": sum(s["errors"] for s in stretches),
        "first_error": next((s["first_error"] for s in stretches if s["first_error"]), None),
        "cpu_seconds": sum(s["cpu_seconds"] for s in stretches),
        "wall_seconds": wall(s["wall_seconds"] for s in stretches),
        "first_start": first_start,
        "last_end": last_end,
        # The span of each slice (from its first acquire's start to its last one's end): one for
        # stretches that ran at once, one per stretch for stretches that ran one after the other.
        "spans": _span(first_start, last_end) if at_once else [span for s in stretches for span in _spans(s)],
        "latencies": [value for s in stretches for value in s["latencies"]],
        "counts": _add_counts(s["counts"] for s in stretches),
    }


def _spans(stretch: dict) -> list[float]:
    return stretch.get("spans", _span(stretch["first_start"], stretch["last_end"]))


def concurrent(stretches: list[dict]) -> dict:
    """Stretches that ran at the same time (one per process): the wall time is the longest."""
    return _combine(stretches, lambda walls: max(walls, default=0.0), at_once=True)


def sequential(stretches: list[dict]) -> dict:
    """Stretches that ran one after the other (the rounds of a cell): the wall times add up."""
    return _combine(stretches, sum, at_once=False)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summary(stretch: dict, concurrency: int, processes: int = 1) -> dict:
    """A cell's figures from the sum of its stretches (JSON-ready; the latencies become percentiles)."""
    latencies = sorted(stretch["latencies"])
    operations = stretch["acquires"]
    cpu, wall = stretch["cpu_seconds"], stretch["wall_seconds"]
    counts = stretch["counts"]
    span = None
    if stretch["first_start"] is not None and stretch["last_end"] is not None:
        span = stretch["last_end"] - stretch["first_start"]
    return {
        "concurrency": concurrency,
        "processes": processes,
        "acquires": operations,
        "rejected": stretch["rejected"],
        "errors": stretch["errors"],
        "first_error": stretch["first_error"],
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        # From the first measured acquire's start to the last one's end, over every round and process;
        # and the same per slice (round).
        "span_seconds": span,
        "slice_spans_seconds": _spans(stretch),
        "cpu_us_per_acquire": cpu / operations * 1e6 if operations else None,
        "acquires_per_second": operations / wall if wall > 0 else None,
        "latency_ms": {
            "p50": percentile(latencies, 50) * 1e3,
            "p99": percentile(latencies, 99) * 1e3,
            "mean": sum(latencies) / operations * 1e3 if operations else 0.0,
            "max": latencies[-1] * 1e3 if latencies else 0.0,
        },
        **counts,
        "requests_per_acquire": sum(counts["requests"].values()) / operations if operations else None,
    }


def item_key(item: dict) -> str:
    return repr(sorted((name, repr(item.get(name))) for name in ("PK", "SK")))


def changed_items(before: list[dict], after: list[dict]) -> list[dict]:
    """Items that are new or different in `after`: what the measured acquires wrote."""
    old = {item_key(item): item for item in before}
    return [item for item in after if old.get(item_key(item)) != item]
