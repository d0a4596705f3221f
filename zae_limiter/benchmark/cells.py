"""One system's cells, driven a stretch at a time: in this process, or from N processes at once.

Standard library only, and only relative imports of this folder's shared modules (the published
package's runner loads the folder by path; see published_runner.py).

A *target* is one scenario on one table of one system. It offers
    prepare()                     the table, entities and stored limits
    scan()                        every item of its table (to find the items the acquires write)
    open_sync(track_capacity)     -> engine.Session
    await open_async(track_capacity) -> engine.Session (inside the running loop)
and may offer `usage()` (the consumed counters of the scenario's buckets, to check them against what
was admitted), `warmup_lap()` (a warm-up of that many acquires, whatever the time, then `after_lap()`)
and `part` (index, count) and `segment` (index, count): which share of an entity rotation a process and
a cell take.

A cell (`Cell` in this process, `ProcessCell` from several) is opened once (its limiter is created and
warmed up), then runs any number of stretches (the rounds of an interleaved run), then is closed. Each
stretch returns the requests it sent with it, so the sums over rounds count only measured acquires.
"""

from __future__ import annotations

import asyncio
from typing import Any

from . import engine


class Cell:
    """One limiter of one target, shared by `concurrency` threads (sync) or tasks on one event loop
    (async). The async cell keeps its own loop between stretches: an async client belongs to the loop
    that created it."""

    def __init__(self, target: Any, api: str, concurrency: int, settings: engine.Settings,
                 track_capacity: bool = False) -> None:
        self.target = target
        self.api = api
        self.concurrency = concurrency
        self.settings = settings
        self.track_capacity = track_capacity
        self.loop: asyncio.AbstractEventLoop | None = None
        self.session: engine.Session | None = None

    def _drive(self, seconds: float | None, iterations: int | None) -> dict:
        assert self.session is not None
        if self.loop is None:
            return engine.drive_threads(self.session.op, self.concurrency, seconds, iterations)
        return self.loop.run_until_complete(engine.drive_tasks(self.session.op, self.concurrency, seconds, iterations))

    def open(self) -> dict:
        """Create the limiter and warm it up; returns the warm-up stretch."""
        if self.api == "sync":
            self.session = self.target.open_sync(self.track_capacity)
        else:
            self.loop = asyncio.new_event_loop()
            self.session = self.loop.run_until_complete(self.target.open_async(self.track_capacity))
        seconds, count = self.settings.warmup_budget(self.concurrency)
        lap = getattr(self.target, "warmup_lap", lambda: None)()
        if lap is None:
            return self._drive(seconds, count)
        warmup = self._drive(None, max(count, lap))  # the whole lap, however long it takes: the cell measures revisits
        getattr(self.target, "after_lap", lambda: None)()
        return warmup

    def run(self, seconds: float | None, iterations: int | None) -> dict:
        assert self.session is not None
        before = self.session.counts()
        stretch = self._drive(seconds, iterations)
        stretch["counts"] = engine.counts_between(before, self.session.counts())
        return stretch

    def close(self) -> None:
        if self.session is None:
            return
        try:
            if self.loop is None:
                self.session.close()
            else:
                self.loop.run_until_complete(self.session.close())
        finally:
            self.session = None
            if self.loop is not None:
                self.loop.close()
                self.loop = None


def _serve_cell(target: Any, index: int, count: int, api: str, concurrency: int, settings: engine.Settings,
                gate: Any, conn: Any) -> None:
    """A child process of a ProcessCell: runs the parent's commands on its own Cell, one at a time."""
    target.part = (index, count)
    cell = Cell(target, api, concurrency, settings)
    try:
        while True:
            command, *args = conn.recv()
            try:
                if command == "open":
                    conn.send(("ok", cell.open()))
                elif command == "run":
                    gate.wait()  # every process starts its stretch at once
                    conn.send(("ok", cell.run(*args)))
                else:  # close
                    cell.close()
                    conn.send(("ok", None))
                    return
            except BaseException as error:  # shown by the parent, which stops the others
                gate.abort()
                conn.send(("error", f"{type(error).__name__}: {error}"[:500]))
                return
    finally:
        cell.close()
        conn.close()


class ProcessCell:
    """The cell from `processes` processes at once (each with `concurrency` workers) on the same bucket:
    what contention between clients costs. A stretch's counts and CPU are summed over the processes,
    its wall time is the longest; each process runs `iterations / processes` of a count, rounded up."""

    def __init__(self, target: Any, api: str, concurrency: int, processes: int, settings: engine.Settings) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # no fork: the children start clean, as other hosts do
        self.processes = processes
        # Held while the children run: a spawned child unpickles the barrier and its pipe end from the
        # parent's copies, which must still exist then.
        self.gate = context.Barrier(processes)
        self.pipes: list[Any] = []
        self.child_ends: list[Any] = []
        self.workers: list[Any] = []
        for index in range(processes):
            mine, theirs = context.Pipe()
            worker = context.Process(target=_serve_cell, daemon=True,
                                     args=(target, index, processes, api, concurrency, settings, self.gate, theirs))
            worker.start()
            self.pipes.append(mine)
            self.child_ends.append(theirs)
            self.workers.append(worker)

    def _ask(self, *command: Any) -> list[Any]:
        for pipe in self.pipes:
            pipe.send(command)
        replies = []
        for pipe in self.pipes:
            try:
                replies.append(pipe.recv())
            except EOFError:
                replies.append(("error", "a benchmark process ended without answering"))
        failures = [detail for status, detail in replies if status != "ok"]
        if failures:
            self.close()
            raise RuntimeError(f"a benchmark process failed: {failures[0]}")
        return [detail for _, detail in replies]

    def open(self) -> dict:
        return engine.concurrent(self._ask("open"))

    def run(self, seconds: float | None, iterations: int | None) -> dict:
        per_process = None if iterations is None else -(-iterations // self.processes)
        return engine.concurrent(self._ask("run", seconds, per_process))

    def close(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(("close",))
                pipe.recv()
            except (OSError, EOFError):
                pass
            pipe.close()
        for worker in self.workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
                worker.join()
        for end in self.child_ends:
            end.close()
        self.pipes, self.child_ends, self.workers = [], [], []


class LocalSystem:
    """A system measured from this process (and its children): one target per scenario and API."""

    def __init__(self, make_target: Any) -> None:
        self.make_target = make_target  # (scenario, api) -> target
        self.target: Any = None
        self.api = "sync"
        self.segments = 1

    def prepare(self, scenario: Any, api: str, cells: int) -> None:
        """The target for `scenario` through `api`, which will run a capacity pass and `cells` cells. Each
        of those takes its own segment of an entity rotation, so that no cell meets an entity that an
        earlier one has used."""
        self.api = api
        self.segments = cells + 1
        self.target = self.make_target(scenario, api)
        self.target.prepare()

    def capacity_pass(self, settings: engine.Settings) -> dict:
        """Concurrency 1 with capacity tracking on, between two scans of the table: the items that changed
        are the items the acquires write (their sizes feed the AWS estimate)."""
        before = self.target.scan()
        self.target.segment = (0, self.segments)
        cell = Cell(self.target, self.api, 1, settings, track_capacity=True)
        try:
            cell.open()
            measured = cell.run(None, settings.capacity_iterations)
        finally:
            cell.close()
        return {"capacity_pass": engine.summary(measured, 1), "written_items": engine.changed_items(before, self.target.scan())}

    def open_cell(self, index: int, concurrency: int, processes: int, settings: engine.Settings) -> Any:
        """The `index`-th timed cell (not yet opened)."""
        self.target.segment = (index + 1, self.segments)
        if processes > 1:
            return ProcessCell(self.target, self.api, concurrency, processes, settings)
        return Cell(self.target, self.api, concurrency, settings)

    def usage(self) -> dict | None:
        usage = getattr(self.target, "usage", None)
        return usage() if usage else None
