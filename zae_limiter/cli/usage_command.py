"""`zae-limiter usage`: usage snapshots as a table, and as a plot over time."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..core.errors import ValidationError
from ..core.limits import Limit
from ..core.models import UsageSnapshot
from ..core.schema import WINDOWS
from .group import cli
from .runtime_commands import connection, open_limiter

RELATIVE = re.compile(r"(\d+)\s*(m|h|d)")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}
BAR_WIDTH = 40


def parse_moment(value: str | None, option: str, now: datetime) -> datetime | None:
    """An ISO datetime (UTC when no offset is given) or a duration back from now: 90m, 24h, 7d."""
    if value is None:
        return None
    match = RELATIVE.fullmatch(value.strip())
    if match:
        try:
            return now - timedelta(**{UNITS[match[2]]: int(match[1])})
        except OverflowError:
            raise click.BadParameter(f"{value!r} reaches back before year 1", param_hint=option) from None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"expected an ISO datetime (2026-11-25T10:00) or a duration (90m, 24h, 7d), got {value!r}",
                                 param_hint=option) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def snapshots_table(snapshots: list[UsageSnapshot], names: list[str], totals: dict[str, float], events: int) -> Table:
    table = Table(show_header=True, header_style="bold", show_footer=True)
    table.add_column("window start (UTC)", footer="total")
    table.add_column("entity")
    table.add_column("resource")
    for name in names:
        table.add_column(name, justify="right", footer=f"{totals.get(name, 0):,.3f}".rstrip("0").rstrip("."))
    table.add_column("acquires", justify="right", footer=f"{events:,}")
    for snap in snapshots:
        table.add_row(
            snap.window_start.strftime("%Y-%m-%d %H:%M"),
            snap.entity_id,
            snap.resource,
            *(f"{snap.counters.get(name, 0):,.3f}".rstrip("0").rstrip(".") for name in names),
            f"{snap.events:,}",
        )
    return table


def period_starts(quotas: list[Limit], starts: list[datetime]) -> dict[str, set[datetime]]:
    """Per quota limit, the window starts that begin one of its calendar periods."""
    marks: dict[str, set[datetime]] = {}
    for limit in quotas:
        for start in starts:
            ns = int(start.timestamp()) * 10**9
            if limit.period(ns)[0] == ns:
                marks.setdefault(limit.name, set()).add(start)
    return marks


def quota_table(quotas: list[Limit], available: dict[str, float], now: datetime) -> Table:
    """Each calendar quota's current period: what is used of it and when it is full again."""
    table = Table(title="Quota periods", show_header=True, header_style="bold")
    for column in ("limit", "period", "quota", "used", "available", "full again at (UTC)"):
        table.add_column(column, justify="right" if column in ("quota", "used", "available") else "left")
    for limit in quotas:
        start, end = limit.period(int(now.timestamp() * 10**9))
        left = available.get(limit.name, limit.capacity)
        table.add_row(
            limit.name + (" (soft)" if limit.soft else ""),
            f"{limit.every} in {limit.tz}, from {datetime.fromtimestamp(start / 1e9, timezone.utc):%Y-%m-%d %H:%M}",
            f"{limit.capacity:,.3f}".rstrip("0").rstrip("."),
            f"{limit.capacity - left:,.3f}".rstrip("0").rstrip("."),
            f"{left:,.3f}".rstrip("0").rstrip("."),
            f"{datetime.fromtimestamp(end / 1e9, timezone.utc):%Y-%m-%d %H:%M}",
        )
    return table


def usage_plot(snapshots: list[UsageSnapshot], names: list[str], quotas: list[Limit] = ()) -> Table:  # type: ignore[assignment]
    """One bar per window and limit, scaled to the largest value of that limit; a window that begins a
    quota's calendar period is marked ⟲ (the quota was full again there)."""
    by_start: dict[datetime, dict[str, float]] = {}
    for snap in snapshots:
        row = by_start.setdefault(snap.window_start, {})
        for name in names:
            row[name] = row.get(name, 0.0) + snap.counters.get(name, 0.0)
    table = Table(show_header=True, header_style="bold", box=None)
    table.add_column("window start (UTC)")
    for name in names:
        table.add_column(name)
    peaks = {name: max((row.get(name, 0.0) for row in by_start.values()), default=0.0) for name in names}
    marks = period_starts(list(quotas), sorted(by_start))
    for start in sorted(by_start):
        cells = []
        for name in names:
            value = by_start[start].get(name, 0.0)
            width = round(BAR_WIDTH * value / peaks[name]) if peaks[name] > 0 else 0
            reset = Text("⟲ ", style="bold yellow") if start in marks.get(name, ()) else Text("")
            cells.append(reset + Text("█" * max(0, width), style="cyan") + Text(f" {value:,.0f}"))
        table.add_row(start.strftime("%Y-%m-%d %H:%M"), *cells)
    return table


@cli.command()
@click.option("--entity", "entity_id", help="Entity whose usage to show.")
@click.option("--resource", help="Resource whose usage to show (every entity, unless --entity).")
@click.option("--window", type=click.Choice(WINDOWS), default="hourly", show_default=True, help="Snapshot window size.")
@click.option("--since", help="Start: an ISO datetime or a duration back from now (90m, 24h, 7d).")
@click.option("--until", help="End (exclusive): an ISO datetime or a duration back from now.")
@click.option("--plot", is_flag=True, help="Also draw the usage over time as bars.")
@click.option("--json", "as_json", is_flag=True, help="Print snapshots and totals as JSON.")
@click.option("--aggregate", is_flag=True,
              help="Emulators only: first run the aggregator over the table's stream (what the Lambda does on AWS).")
@connection
def usage(entity_id: str | None, resource: str | None, window: str, since: str | None, until: str | None, plot: bool,
          as_json: bool, aggregate: bool, table_name: str, region: str | None, endpoint_url: str | None) -> None:
    """Show usage recorded by the aggregator, per window, with totals."""
    now = datetime.now(timezone.utc)
    start, end = parse_moment(since, "--since", now), parse_moment(until, "--until", now)
    if aggregate:
        if not endpoint_url:
            raise click.UsageError("--aggregate reads an emulator's stream: give --endpoint-url (on AWS the Lambda does this)")
        from ..local_stream import aggregate_stream

        run = aggregate_stream(table_name, endpoint_url=endpoint_url, region=region or "us-east-1")
        click.echo(f"aggregated {run.records} stream records into {run.snapshots_written} snapshot writes", err=True)
    with open_limiter(table_name, region, endpoint_url) as limiter:
        snapshots = limiter.get_usage_snapshots(entity_id=entity_id, resource=resource, window=window, start=start, end=end)
        summary = limiter.get_usage_summary(entity_id=entity_id, resource=resource, window=window, start=start, end=end)
        quotas, left = _quotas(limiter, entity_id, resource)
    if as_json:
        click.echo(json.dumps({
            "snapshots": [
                {"entity_id": s.entity_id, "resource": s.resource, "window": s.window,
                 "window_start": s.window_start.isoformat(), "counters": s.counters, "events": s.events}
                for s in snapshots
            ],
            "totals": {"counters": summary.counters, "events": summary.events, "snapshots": summary.snapshots},
        }, indent=2))
        return
    console = Console()
    if not snapshots:
        click.echo("no usage recorded for this selection", err=True)
        return
    names = sorted({name for snap in snapshots for name in snap.counters})
    console.print(snapshots_table(snapshots, names, summary.counters, summary.events))
    if quotas:
        console.print(quota_table(quotas, left, now))
    if plot:
        console.print(usage_plot(snapshots, names, quotas))


def _quotas(limiter: Any, entity_id: str | None, resource: str | None) -> tuple[list[Limit], dict[str, float]]:
    """The calendar quotas that apply to (entity, resource), with what is available of each now, when
    both are given and limits are stored for them (else none)."""
    if entity_id is None or resource is None:
        return [], {}
    try:
        limits = limiter.get_effective_limits(entity_id, resource)
    except ValidationError:  # nothing stored: the usage is all there is to show
        return [], {}
    quotas = [limit for limit in limits if limit.every]
    return quotas, (limiter.available(entity_id, resource) if quotas else {})
