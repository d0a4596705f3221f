"""Driving one scenario through one API and measuring it: the same code measures both packages.

Standard library only, with no imports from this package: the runner for the published package
loads this file by path in its own virtual environment (see published_runner.py).

A *target* is one scenario on one table through one API. It offers:
    open_sync(track_capacity)        -> Session            (api "sync")
    await open_async(track_capacity) -> Session            (api "async", inside the running loop)
    scan()                           -> every item of its table, in DynamoDB JSON
A Session has `op` (one acquire with the scenario's body; returns True when it was refused as
expected), `counts()` (cumulative requests per operation and consumed units) and `close` (a
coroutine function for async sessions).

Per scenario and API: a capacity pass (concurrency 1, capacity tracking on, with a table scan before
and after to find the items the acquires write), then one timed cell per concurrency, each on a
fresh limiter, warmed up first. CPU is `time.process_time()` of this process only: the DynamoDB
emulator is another process, so its work never counts as client CPU.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable


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

    def to_dict(self) -> dict:
        return {
            "processes": list(self.processes),
            "seconds": self.seconds,
            "iterations": self.iterations,
            "warmup": self.warmup,
            "warmup_seconds": self.warmup_seconds,
            "capacity_iterations": self.capacity_iterations,
            "concurrencies": list(self.concurrencies),
        }


class _Run:
    """What the workers of one measured run collect."""

    def __init__(self, concurrency: int) -> None:
        self.latencies: list[list[float]] = [[] for _ in range(concurrency)]
        self.rejected = 0
        self.errors = 0
        self.first_error: str | None = None
        self.lock = threading.Lock()

    def failed(self, error: BaseException) -> None:
        with self.lock:
            self.errors += 1
            if self.first_error is None:
                self.first_error = f"{type(error).__name__}: {error}"[:500]

    def refused(self) -> None:
        with self.lock:
            self.rejected += 1


def _stop(counter: Any, iterations: int | None, deadline: float | None) -> bool:
    if iterations is not None and next(counter) >= iterations:
        return True
    return deadline is not None and time.perf_counter() >= deadline


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
            started = time.perf_counter()
            try:
                if op():
                    run.refused()
            except Exception as error:  # counted and shown: one timeout must not lose the whole run
                run.failed(error)
            latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker, args=(lat,), daemon=True) for lat in run.latencies]
    for thread in threads:
        thread.start()
    # Threads are started and parked at the gate before the clocks start: their creation is not measured.
    cpu, wall = time.process_time(), time.perf_counter()
    bounds["deadline"] = wall + seconds if seconds is not None else None
    gate.wait()
    for thread in threads:
        thread.join()
    return _summary(run, concurrency, time.process_time() - cpu, time.perf_counter() - wall)


async def drive_tasks(op: Callable[[], Any], concurrency: int, seconds: float | None, iterations: int | None) -> dict:
    """`concurrency` tasks awaiting `op` on one shared limiter, in the running event loop."""
    run = _Run(concurrency)
    counter = itertools.count()
    cpu, wall = time.process_time(), time.perf_counter()
    deadline = wall + seconds if seconds is not None else None

    async def worker(latencies: list[float]) -> None:
        while not _stop(counter, iterations, deadline):
            started = time.perf_counter()
            try:
                if await op():
                    run.refused()
            except Exception as error:
                run.failed(error)
            latencies.append(time.perf_counter() - started)
            # Yield as a server's request handler would: an acquire answered without I/O (a local
            # rejection) must not let one task hold the loop while others' requests wait unread.
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(lat) for lat in run.latencies))
    return _summary(run, concurrency, time.process_time() - cpu, time.perf_counter() - wall)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _summary(run: _Run, concurrency: int, cpu: float, wall: float) -> dict:
    latencies = sorted(value for worker in run.latencies for value in worker)
    operations = len(latencies)
    return {
        "concurrency": concurrency,
        "acquires": operations,
        "rejected": run.rejected,
        "errors": run.errors,
        "first_error": run.first_error,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "cpu_us_per_acquire": cpu / operations * 1e6 if operations else None,
        "acquires_per_second": operations / wall if wall > 0 else None,
        "latency_ms": {
            "p50": percentile(latencies, 50) * 1e3,
            "p99": percentile(latencies, 99) * 1e3,
            "mean": sum(latencies) / operations * 1e3 if operations else 0.0,
            "max": latencies[-1] * 1e3 if latencies else 0.0,
        },
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


def _with_counts(result: dict, counts: dict) -> dict:
    result.update(counts)
    total = sum(counts["requests"].values())
    result["requests_per_acquire"] = total / result["acquires"] if result["acquires"] else None
    return result


def _warmup(settings: Settings, concurrency: int) -> tuple[float, int]:
    """Warm-up bounds: every worker opens its connection and the caches fill before the clocks run."""
    return settings.warmup_seconds, max(settings.warmup, concurrency)


def _sync_cell(target: Any, concurrency: int, settings: Settings, seconds: float | None, iterations: int | None,
               track_capacity: bool) -> dict:
    session = target.open_sync(track_capacity)
    try:
        drive_threads(session.op, concurrency, *_warmup(settings, concurrency))
        before = session.counts()
        result = drive_threads(session.op, concurrency, seconds, iterations)
        return _with_counts(result, counts_between(before, session.counts()))
    finally:
        session.close()


def _async_cell(target: Any, concurrency: int, settings: Settings, seconds: float | None, iterations: int | None,
                track_capacity: bool) -> dict:
    async def cell() -> dict:
        # Opened inside the loop: an async client may belong to the loop that created it.
        session = await target.open_async(track_capacity)
        try:
            await drive_tasks(session.op, concurrency, *_warmup(settings, concurrency))
            before = session.counts()
            result = await drive_tasks(session.op, concurrency, seconds, iterations)
            return _with_counts(result, counts_between(before, session.counts()))
        finally:
            await session.close()

    return asyncio.run(cell())


def measure_cell(target: Any, api: str, concurrency: int, settings: Settings, *, seconds: float | None,
                 iterations: int | None, track_capacity: bool = False, processes: int = 1) -> dict:
    if processes > 1:
        return measure_cell_in_processes(target, api, concurrency, processes, settings, seconds, iterations)
    cell = _sync_cell if api == "sync" else _async_cell
    result = cell(target, concurrency, settings, seconds, iterations, track_capacity)
    result["processes"] = 1
    return result


def _process_cell(target: Any, api: str, concurrency: int, settings: Settings, seconds: float | None,
                  iterations: int | None, ready: Any, results: Any) -> None:
    """One of the processes of a multi-process cell: warm up, wait for the others, measure, report."""
    try:
        if api == "sync":
            session = target.open_sync(False)
            drive_threads(session.op, concurrency, *_warmup(settings, concurrency))
            before = session.counts()
            ready.wait()
            result = drive_threads(session.op, concurrency, seconds, iterations)
            counts = counts_between(before, session.counts())
            session.close()
        else:
            async def cell() -> tuple[dict, dict]:
                session = await target.open_async(False)
                await drive_tasks(session.op, concurrency, *_warmup(settings, concurrency))
                before = session.counts()
                await asyncio.get_running_loop().run_in_executor(None, ready.wait)
                measured = await drive_tasks(session.op, concurrency, seconds, iterations)
                counted = counts_between(before, session.counts())
                await session.close()
                return measured, counted

            result, counts = asyncio.run(cell())
        results.put(("ok", result, counts))
    except BaseException as error:  # reported to the parent, which shows it in the row
        ready.abort()
        results.put(("error", f"{type(error).__name__}: {error}"[:500], None))


def measure_cell_in_processes(target: Any, api: str, concurrency: int, processes: int, settings: Settings,
                              seconds: float | None, iterations: int | None) -> dict:
    """The cell from `processes` processes at once (each with `concurrency` workers) on the same bucket:
    what contention between clients costs. Counts and CPU are summed over the processes; the per-process
    iteration budget is `iterations / processes`, rounded up."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork: the children start clean, as other hosts do
    ready = context.Barrier(processes)
    results = context.Queue()
    per_process = None if iterations is None else -(-iterations // processes)
    workers = [
        context.Process(target=_process_cell, args=(target, api, concurrency, settings, seconds, per_process, ready, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    reports = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    failures = [detail for status, detail, _ in reports if status != "ok"]
    if failures:
        raise RuntimeError(f"a benchmark process failed: {failures[0]}")
    cells = [(result, counts) for _, result, counts in reports]
    latencies = {key: max(result["latency_ms"][key] for result, _ in cells) for key in ("p50", "p99", "max")}
    acquires = sum(result["acquires"] for result, _ in cells)
    cpu = sum(result["cpu_seconds"] for result, _ in cells)
    wall = max(result["wall_seconds"] for result, _ in cells)
    merged = {
        "concurrency": concurrency,
        "processes": processes,
        "acquires": acquires,
        "rejected": sum(result["rejected"] for result, _ in cells),
        "errors": sum(result["errors"] for result, _ in cells),
        "first_error": next((result["first_error"] for result, _ in cells if result["first_error"]), None),
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "cpu_us_per_acquire": cpu / acquires * 1e6 if acquires else None,
        "acquires_per_second": acquires / wall if wall > 0 else None,
        # The slowest process's percentiles: an upper bound on the whole cell's.
        "latency_ms": {**latencies, "mean": sum(r["latency_ms"]["mean"] * r["acquires"] for r, _ in cells) / acquires
                       if acquires else 0.0},
    }
    requests: dict[str, int] = {}
    for _, counts in cells:
        for name, value in counts["requests"].items():
            requests[name] = requests.get(name, 0) + value
    total = {
        "requests": requests,
        "read_units": sum(counts["read_units"] for _, counts in cells),
        "write_units": sum(counts["write_units"] for _, counts in cells),
    }
    return _with_counts(merged, total)


def item_key(item: dict) -> str:
    return repr(sorted((name, repr(item.get(name))) for name in ("PK", "SK")))


def changed_items(before: list[dict], after: list[dict]) -> list[dict]:
    """Items that are new or different in `after`: what the measured acquires wrote."""
    old = {item_key(item): item for item in before}
    return [item for item in after if old.get(item_key(item)) != item]


def run_scenario(target: Any, scenario: Any, api: str, settings: Settings,
                 progress: Callable[[str], None] = lambda message: None) -> dict:
    """The capacity pass, then one timed cell per concurrency. Returns plain data (JSON-ready)."""
    before = target.scan()
    progress(f"{scenario.name} {api}: capacity pass")
    capacity = measure_cell(
        target, api, 1, settings, seconds=None, iterations=settings.capacity_iterations, track_capacity=True
    )
    written = changed_items(before, target.scan())
    cells = []
    for processes in settings.processes:
        for concurrency in settings.concurrencies:
            progress(f"{scenario.name} {api}: concurrency {concurrency}" + (f" x {processes} processes" if processes > 1 else ""))
            cells.append(measure_cell(target, api, concurrency, settings, seconds=settings.seconds,
                                      iterations=settings.iterations, processes=processes))
    return {
        "scenario": scenario.name,
        "api": api,
        "capacity_pass": capacity,
        "written_items": written,
        "cells": cells,
    }
