"""Measuring the compared systems round by round within each cell, so that each ratio is of one moment.

Standard library only, and only relative imports of this folder's shared modules.

A *system* offers `prepare(scenario, api, cells)`, `capacity_pass(settings)`, `open_cell(index,
concurrency, processes, settings)` (a cell with `open()`, `run(seconds, iterations)` and `close()`) and
`usage()`; cells.LocalSystem runs in this process, published.RemoteSystem in the published package's
runner. Per scenario and API, every system prepares its table and makes its capacity pass; then, per
cell (processes x concurrency), every system opens its cell (a fresh limiter, warmed up), and the cell's
time (or count) is cut into `rounds` slices that the systems take in turn: A B, then B A, then A B...
(each system goes first as often as last, so a drift of the machine's load over the cell weighs on
both alike). Counts and CPU are summed per system over its slices. A lone system runs its cell in one
slice.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from . import engine


def round_order(names: Sequence[str], rounds: int) -> list[list[str]]:
    """Who goes when: forward in even rounds, backward in odd ones."""
    return [list(names) if r % 2 == 0 else list(reversed(names)) for r in range(rounds)]


def slice_budgets(seconds: float | None, iterations: int | None, rounds: int) -> list[tuple[float | None, int | None]]:
    """A cell's time and count cut into `rounds` slices; a count is spread as evenly as whole acquires
    allow (the first slices take the remainder), and a slice with nothing to do is left out."""
    each = None if seconds is None else seconds / rounds
    if iterations is None:
        return [(each, None)] * rounds
    counts = [iterations // rounds + (1 if r < iterations % rounds else 0) for r in range(rounds)]
    return [(each, count) for count in counts if count > 0]


def cell_shapes(scenario: Any, settings: engine.Settings) -> list[tuple[int, int]]:
    """(processes, concurrency) of each timed cell: the scenario's own process counts, else the settings'."""
    processes = scenario.processes or settings.processes
    return [(p, c) for p in processes for c in settings.concurrencies]


def run_cell(systems: dict[str, Any], index: int, concurrency: int, processes: int, settings: engine.Settings) -> dict[str, dict]:
    """One cell on every system, interleaved; per system its summary, warm-up and usage counters."""
    names = list(systems)
    rounds = settings.rounds if len(names) > 1 else 1
    usage_before = {name: systems[name].usage() for name in names}
    cells: dict[str, Any] = {}
    warmups: dict[str, dict] = {}
    stretches: dict[str, list[dict]] = {name: [] for name in names}
    try:
        for name in names:
            cells[name] = systems[name].open_cell(index, concurrency, processes, settings)
            warmups[name] = cells[name].open()
        budgets = slice_budgets(settings.seconds, settings.iterations, rounds)
        for order, budget in zip(round_order(names, len(budgets)), budgets):
            for name in order:
                stretches[name].append(cells[name].run(*budget))
    finally:
        for cell in cells.values():
            cell.close()
    results = {}
    for name in names:
        result = engine.summary(engine.sequential(stretches[name]), concurrency, processes)
        result["rounds"] = len(stretches[name])
        warmup = warmups[name]
        result["warmup"] = {"acquires": warmup["acquires"], "rejected": warmup["rejected"], "errors": warmup["errors"]}
        before, after = usage_before[name], systems[name].usage()
        if before is not None and after is not None:
            result["usage_moved"] = {key: after.get(key, 0) - before.get(key, 0) for key in after}
        results[name] = result
    return results


def measure(systems: dict[str, Any], scenario: Any, api: str, settings: engine.Settings,
            progress: Callable[[str], None] = lambda message: None) -> dict[str, dict]:
    """Every cell of one scenario through one API on every system. Returns per system plain data
    (JSON-ready): the scenario, the API, the capacity pass, the items written and the cells."""
    shapes = cell_shapes(scenario, settings)
    together = " + ".join(systems)
    results = {}
    for name, system in systems.items():
        progress(f"{scenario.name} {api}: {name}: table and capacity pass")
        system.prepare(scenario, api, len(shapes))
        results[name] = {"scenario": scenario.name, "spec": scenario.to_dict(), "api": api, **system.capacity_pass(settings),
                         "cells": []}
    for index, (processes, concurrency) in enumerate(shapes):
        progress(f"{scenario.name} {api}: concurrency {concurrency}" + (f" x {processes} processes" if processes > 1 else "")
                 + (f", {together} in {settings.rounds} rounds" if len(systems) > 1 else ""))
        for name, cell in run_cell(systems, index, concurrency, processes, settings).items():
            results[name]["cells"].append(cell)
    return results
