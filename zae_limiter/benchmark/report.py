"""From measured runs to figures: rows per cell, ratios against the published package, the rich
tables and the JSON document that lets two runs be compared."""

from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from typing import Any, Iterable

from rich.console import Console
from rich.table import Table

from .sizing import estimate_write_units, item_size

FORMAT = 1
COLUMNS = (
    ("Scenario", "left"), ("API", "left"), ("Procs", "right"), ("Conc", "right"), ("Acquires", "right"), ("Req/acq", "right"),
    ("WCU/acq moto", "right"), ("WCU/acq AWS est.", "right"), ("CPU µs/acq", "right"), ("Acq/s", "right"),
    ("p50 ms", "right"), ("p99 ms", "right"),
)


def _per(value: float, count: int) -> float | None:
    return value / count if count else None


def rows(results: Iterable[dict], implementation: str) -> list[dict]:
    """One row per (scenario, API, concurrency) from engine.run_scenario results."""
    out = []
    for result in results:
        written = result["written_items"]
        capacity = result["capacity_pass"]
        n = capacity["acquires"]
        capacity_summary = {
            "acquires": n,
            "requests": capacity["requests"],
            "requests_per_acquire": capacity["requests_per_acquire"],
            "write_units_per_acquire_reported": _per(capacity["write_units"], n),
            "read_units_per_acquire_reported": _per(capacity["read_units"], n),
            "wcu_per_acquire_estimate": _per(estimate_write_units(capacity["requests"], written), n),
        }
        for cell in result["cells"]:
            count = cell["acquires"]
            out.append({
                "implementation": implementation,
                "scenario": result["scenario"],
                "api": result["api"],
                "concurrency": cell["concurrency"],
                "processes": cell.get("processes", 1),
                "acquires": count,
                "rejected": cell["rejected"],
                "errors": cell["errors"],
                "first_error": cell["first_error"],
                "requests": cell["requests"],
                "requests_per_acquire": cell["requests_per_acquire"],
                # moto's own numbers, from ReturnConsumedCapacity in the capacity pass (concurrency 1)
                "wcu_per_acquire_reported": capacity_summary["write_units_per_acquire_reported"],
                "rcu_per_acquire_reported": capacity_summary["read_units_per_acquire_reported"],
                # what AWS would charge for this cell's requests on the items the acquires wrote
                "wcu_per_acquire_estimate": _per(estimate_write_units(cell["requests"], written), count),
                "written_item_bytes": sorted(item_size(item) for item in written),
                "cpu_us_per_acquire": cell["cpu_us_per_acquire"],
                "acquires_per_second": cell["acquires_per_second"],
                "p50_ms": cell["latency_ms"]["p50"],
                "p99_ms": cell["latency_ms"]["p99"],
                "latency_ms": cell["latency_ms"],
                "cpu_seconds": cell["cpu_seconds"],
                "wall_seconds": cell["wall_seconds"],
                "capacity_pass": capacity_summary,
            })
    return out


# Below this many requests (or WCU) per acquire, ours is a cache refresh now and then: a ratio against
# it would be noise, so none is given.
RATE_FLOOR = 0.01


def _ratio(numerator: float | None, denominator: float | None, floor: float = 0.0) -> float | None:
    if numerator is None or denominator is None or denominator == 0 or denominator < floor:
        return None
    return numerator / denominator


def ratios(ours: list[dict], theirs: list[dict]) -> list[dict]:
    """Published against ours per cell, each oriented so that above 1 means ours is better."""
    by_cell = {(r["scenario"], r["api"], r["concurrency"], r.get("processes", 1)): r for r in theirs}
    out = []
    for our in ours:
        their = by_cell.get((our["scenario"], our["api"], our["concurrency"], our.get("processes", 1)))
        if their is None:
            continue
        out.append({
            "scenario": our["scenario"],
            "api": our["api"],
            "concurrency": our["concurrency"],
            "cpu_theirs_over_ours": _ratio(their["cpu_us_per_acquire"], our["cpu_us_per_acquire"]),
            "requests_theirs_over_ours": _ratio(
                their["requests_per_acquire"], our["requests_per_acquire"], RATE_FLOOR
            ),
            "wcu_estimate_theirs_over_ours": _ratio(
                their["wcu_per_acquire_estimate"], our["wcu_per_acquire_estimate"], RATE_FLOOR
            ),
            "throughput_ours_over_theirs": _ratio(our["acquires_per_second"], their["acquires_per_second"]),
            "p50_theirs_over_ours": _ratio(their["p50_ms"], our["p50_ms"]),
            "p99_theirs_over_ours": _ratio(their["p99_ms"], our["p99_ms"]),
        })
    return out


def machine() -> dict:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def document(*, command: str, started: datetime, settings: dict, endpoint: str, ours: dict,
             published: dict | None) -> dict:
    return {
        "benchmark": "zae-limiter",
        "format": FORMAT,
        "date": started.isoformat(timespec="seconds"),
        "duration_seconds": round((datetime.now(timezone.utc) - started).total_seconds(), 1),
        "command": command,
        "machine": machine(),
        "settings": settings,
        "endpoint": endpoint,
        "ours": ours,
        "published": published,
        "ratios": ratios(ours["rows"], published["rows"]) if published else [],
    }


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    if 0 < value < 10**-digits:
        return f"<{10**-digits:g}"  # not 0.00: a rare request (a cache refresh) still shows
    return f"{value:,.{digits}f}"


def _acquires(row: dict) -> str:
    text = f"{row['acquires']:,}"
    if row["rejected"]:
        text += f" ({row['rejected']:,} refused)"
    if row["errors"]:
        text += f" [red]{row['errors']:,} errors[/red]"
    return text


def figures_table(title: str, table_rows: list[dict]) -> Table:
    table = Table(title=title, title_justify="left")
    for name, justify in COLUMNS:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    previous = None
    for row in table_rows:
        table.add_row(
            row["scenario"] if row["scenario"] != previous else "",
            row["api"],
            str(row.get("processes", 1)),
            str(row["concurrency"]),
            _acquires(row),
            _num(row["requests_per_acquire"]),
            _num(row["wcu_per_acquire_reported"]),
            _num(row["wcu_per_acquire_estimate"]),
            _num(row["cpu_us_per_acquire"], 0),
            _num(row["acquires_per_second"], 0),
            _num(row["p50_ms"], 1),
            _num(row["p99_ms"], 1),
        )
        previous = row["scenario"]
    return table


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def ratios_table(title: str, table_ratios: list[dict]) -> Table:
    table = Table(title=title, title_justify="left", caption_justify="left",
                  caption=f"above 1×: ours is better; —: ours below {RATE_FLOOR} per acquire, or none")
    for name in ("Scenario", "API", "Conc", "CPU theirs/ours", "Req theirs/ours", "WCU est. theirs/ours",
                 "Acq/s ours/theirs", "p50 theirs/ours", "p99 theirs/ours"):
        table.add_column(name, justify="left" if name in ("Scenario", "API") else "right")
    previous = None
    for r in table_ratios:
        table.add_row(
            r["scenario"] if r["scenario"] != previous else "", r["api"], str(r["concurrency"]),
            _times(r["cpu_theirs_over_ours"]), _times(r["requests_theirs_over_ours"]),
            _times(r["wcu_estimate_theirs_over_ours"]), _times(r["throughput_ours_over_theirs"]),
            _times(r["p50_theirs_over_ours"]), _times(r["p99_theirs_over_ours"]),
        )
        previous = r["scenario"]
    return table


def print_report(console: Console, doc: dict) -> None:
    ours = doc["ours"]
    console.print(figures_table(
        f"zae-limiter {ours['version']} ({ours.get('git_commit') or 'no git'}), {doc['endpoint']}, {doc['date']}",
        ours["rows"],
    ))
    published = doc["published"]
    if published:
        console.print(figures_table(f"published zae-limiter {published['version']} ({published['requirement']})",
                                    published["rows"]))
        console.print(ratios_table(f"published {published['version']} against ours", doc["ratios"]))
    console.print(
        "Req/acq: DynamoDB API calls per acquire. WCU/acq moto: capacity the emulator reported "
        "(ReturnConsumedCapacity; not AWS's numbers). WCU/acq AWS est.: DynamoDB's sizing rules applied "
        "to the items written. CPU µs/acq: client process CPU time (the emulator runs in another process). "
        "p50/p99: wall time of one acquire including its body (adjust, refund)."
    )
    errors = [row for rows_ in (ours["rows"], (published or {}).get("rows", [])) for row in rows_ if row["errors"]]
    for row in errors:
        console.print(f"[red]{row['implementation']} {row['scenario']} {row['api']} x{row['concurrency']}: "
                      f"{row['errors']} failed acquires, first: {row['first_error']}[/red]")
