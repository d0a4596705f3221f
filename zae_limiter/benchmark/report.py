"""From measured runs to figures: rows per cell, ratios against the published package, the rich
tables and the JSON document that lets two runs be compared."""

from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

from rich.console import Console
from rich.table import Table

from .sizing import estimate_write_units, item_size
from .spec import scenario_from_dict

FORMAT = 2
COLUMNS = (
    ("Scenario", "left"), ("API", "left"), ("Procs", "right"), ("Conc", "right"), ("Acquires", "right"), ("Req/acq", "right"),
    ("WCU/acq moto", "right"), ("WCU/acq AWS est.", "right"), ("RCU/acq moto", "right"), ("CPU µs/acq", "right"),
    ("Acq/s", "right"), ("p50 ms", "right"), ("p99 ms", "right"), ("Admitted/allowed", "right"),
)


def _per(value: float, count: int) -> float | None:
    return value / count if count else None


def over_admission(limits: Iterable[Any], consume: Mapping[str, float], admitted: int, span_seconds: float,
                   slice_spans: Sequence[float] = ()) -> dict:
    """What `admitted` acquires took of each limit against the most a token bucket can give in
    `span_seconds`: its capacity (at most a full bucket at the start) plus its refill over the span.
    When the acquires ran in slices with gaps between them (the rounds of an interleaved cell), the sum
    over the slices of capacity + refill over each slice is a bound too (a bucket holds no more than its
    capacity however long it idles), and the smaller of the two is the one checked. Returns the limit
    that came closest (`limits`: spec.LimitSpec; `over` is 0 unless the limiter over-admitted)."""
    closest = None
    for limit in limits:
        taken = admitted * consume.get(limit.name, 0)
        allowed = limit.capacity + limit.per_second * span_seconds
        if slice_spans:
            allowed = min(allowed, sum(limit.capacity + limit.per_second * span for span in slice_spans))
        figure = {"limit": limit.name, "admitted": taken, "allowed": allowed, "over": max(0.0, taken - allowed),
                  "span_seconds": span_seconds, "slices": len(slice_spans) or 1}
        if taken and (closest is None or taken / allowed > closest["admitted"] / closest["allowed"]):
            closest = figure
    return closest or {"limit": None, "admitted": 0, "allowed": None, "over": 0.0, "span_seconds": span_seconds}


def net_consumption(spec: Any) -> dict[str, float]:
    """What one admitted acquire of the scenario consumes in the end: its `consume`, plus its adjust when
    the body adjusts, nothing when the body raises (the lease gives everything back)."""
    if spec.body == "raise":
        return {}
    net = dict(spec.consume)
    if spec.body == "adjust":
        for name, amount in spec.adjust.items():
            net[name] = net.get(name, 0) + amount
    return net


def usage_check(spec: Any, cell: dict) -> dict | None:
    """The buckets' consumed counters (thousandths) moved over the cell against what its acquires were
    admitted (net of adjusts and refunds), warm-up included: equal when usage is exact."""
    moved = cell.get("usage_moved")
    if moved is None:
        return None
    warmup = cell["warmup"]
    admitted = (warmup["acquires"] - warmup["rejected"] - warmup["errors"]) + (cell["acquires"] - cell["rejected"] - cell["errors"])
    net = net_consumption(spec)
    expected = {key: admitted * net.get(key.rsplit(" ", 1)[-1], 0) for key in moved}
    counted = {key: milli / 1000 for key, milli in moved.items()}
    return {"admitted_acquires": admitted, "expected": expected, "counted": counted, "equal": expected == counted}


def _bounds(spec: Any, cell: dict) -> dict:
    figures: dict[str, Any] = {}
    if spec.exhausts and cell["span_seconds"] is not None:
        admitted = cell["acquires"] - cell["rejected"] - cell["errors"]
        figures["over_admission"] = over_admission(spec.limits, spec.consume, admitted, cell["span_seconds"],
                                                   cell.get("slice_spans_seconds", ()))
    usage = usage_check(spec, cell)
    if usage is not None:
        figures["usage"] = usage
    return figures


def rows(results: Iterable[dict], implementation: str) -> list[dict]:
    """One row per (scenario, API, processes, concurrency) from rounds.measure results."""
    out = []
    dynamodb = implementation != "redis"
    for result in results:
        spec = scenario_from_dict(result["spec"])
        written = result["written_items"]
        capacity = result["capacity_pass"]
        n = capacity["acquires"]
        capacity_summary = {
            "acquires": n,
            "requests": capacity["requests"],
            "requests_per_acquire": capacity["requests_per_acquire"],
            "write_units_per_acquire_reported": _per(capacity["write_units"], n) if dynamodb else None,
            "read_units_per_acquire_reported": _per(capacity["read_units"], n) if dynamodb else None,
            "wcu_per_acquire_estimate": _per(estimate_write_units(capacity["requests"], written), n) if dynamodb else None,
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
                "wcu_per_acquire_estimate": _per(estimate_write_units(cell["requests"], written), count) if dynamodb else None,
                "written_item_bytes": sorted(item_size(item) for item in written)[:20],
                "cpu_us_per_acquire": cell["cpu_us_per_acquire"],
                "acquires_per_second": cell["acquires_per_second"],
                "p50_ms": cell["latency_ms"]["p50"],
                "p99_ms": cell["latency_ms"]["p99"],
                "latency_ms": cell["latency_ms"],
                "cpu_seconds": cell["cpu_seconds"],
                "wall_seconds": cell["wall_seconds"],
                "span_seconds": cell["span_seconds"],
                "rounds": cell.get("rounds", 1),
                "warmup": cell.get("warmup"),
                **_bounds(spec, cell),
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
            "processes": our.get("processes", 1),
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
             published: dict | None, redis: dict | None = None) -> dict:
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
        "redis": redis,
        "redis_ratios": ratios(ours["rows"], redis["rows"]) if redis else [],
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


def _admitted(row: dict) -> str:
    figure = row.get("over_admission")
    if figure is None or figure["allowed"] is None:
        return "—"
    text = f"{figure['admitted']:,.0f} / {figure['allowed']:,.0f}"
    return text if figure["over"] == 0 else f"[red]{text} OVER by {figure['over']:,.3f}[/red]"


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
            _num(row["rcu_per_acquire_reported"]),
            _num(row["cpu_us_per_acquire"], 0),
            _num(row["acquires_per_second"], 0),
            _num(row["p50_ms"], 1),
            _num(row["p99_ms"], 1),
            _admitted(row),
        )
        previous = row["scenario"]
    return table


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def ratios_table(title: str, table_ratios: list[dict]) -> Table:
    table = Table(title=title, title_justify="left", caption_justify="left",
                  caption=f"above 1×: ours is better; —: ours below {RATE_FLOOR} per acquire, or none")
    for name in ("Scenario", "API", "Procs", "Conc", "CPU theirs/ours", "Req theirs/ours", "WCU est. theirs/ours",
                 "Acq/s ours/theirs", "p50 theirs/ours", "p99 theirs/ours"):
        table.add_column(name, justify="left" if name in ("Scenario", "API") else "right")
    previous = None
    for r in table_ratios:
        table.add_row(
            r["scenario"] if r["scenario"] != previous else "", r["api"], str(r.get("processes", 1)), str(r["concurrency"]),
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
    redis = doc.get("redis")
    if redis:
        console.print(figures_table(f"Redis-backed: {redis['title']}", redis["rows"]))
        console.print(ratios_table("Redis-backed against ours", doc["redis_ratios"]))
    console.print(
        "Req/acq: DynamoDB API calls per acquire. WCU/acq moto: capacity the emulator reported "
        "(ReturnConsumedCapacity; not AWS's numbers). WCU/acq AWS est.: DynamoDB's sizing rules applied "
        "to the items written. CPU µs/acq: client process CPU time (the emulator runs in another process). "
        "p50/p99: wall time of one acquire including its body (adjust, refund). Admitted/allowed: what the "
        "measured acquires took of the limit against capacity + refill from the first one's start to the last "
        "one's end (or, when smaller, summed over the rounds' own spans). With more than one system, each cell ran in rounds, the systems taking turns."
    )
    every_row = [row for part in (ours, published or {}, redis or {}) for row in part.get("rows", [])]
    for row in every_row:
        where = f"{row['implementation']} {row['scenario']} {row['api']} x{row['concurrency']} ({row['processes']} proc)"
        if row["errors"]:
            console.print(f"[red]{where}: {row['errors']} failed acquires, first: {row['first_error']}[/red]")
        usage = row.get("usage")
        if usage is not None and not usage["equal"]:
            console.print(f"[red]{where}: usage counters moved by {usage['counted']}, "
                          f"admitted {usage['expected']}[/red]")
