"""The end-to-end demo on the embedded backend: `make demo` (or `python -m zae_limiter.demo`)."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.console import Console
from rich.table import Table

from zae_limiter import Limit, RateLimiter, RateLimitExceeded, UsageSnapshot, UsageSummary
from zae_limiter.local import LocalDynamoDB, ensure_table
from zae_limiter.local_stream import StreamReader, lambda_environment, lambda_events

console = Console()
TABLE = "rate_limits"
REGION = "us-east-1"


def show_available(title: str, values: dict[str, dict[str, float]]) -> None:
    table = Table(title=title)
    table.add_column("entity")
    names = sorted({name for per in values.values() for name in per})
    for name in names:
        table.add_column(name, justify="right")
    for entity, per in values.items():
        table.add_row(entity, *(f"{per.get(name, 0):,.1f}" for name in names))
    console.print(table)


async def run(endpoint_url: str) -> None:
    ensure_table(TABLE, endpoint_url=endpoint_url, region=REGION)
    async with RateLimiter(table_name=TABLE, region=REGION, endpoint_url=endpoint_url) as limiter:
        console.rule("[bold]Entities and stored limits")
        await limiter.create_entity("acme", name="Acme Corp")
        await limiter.create_entity("acme-key-1", name="Acme production key", parent_id="acme", cascade=True)
        await limiter.set_limits("acme", [Limit.per_minute("rpm", 5), Limit.per_minute("tpm", 20_000)])
        await limiter.set_limits(
            "acme-key-1", [Limit.per_minute("rpm", 3), Limit.per_minute("tpm", 10_000, burst=15_000)], resource="gpt-4"
        )
        children = await limiter.get_children("acme")
        console.print(f"acme's children: {[c.entity_id for c in children]} (acme-key-1 cascades to acme)")

        console.rule("[bold]Acquire: admitted, then rejected with retry-after")
        admitted = 0
        for i in range(4):
            try:
                async with limiter.acquire("acme-key-1", "gpt-4", consume={"rpm": 1, "tpm": 2_000}) as lease:
                    actual = 1_500 + 400 * i
                    await lease.adjust(tpm=actual - 2_000)  # the LLM reported its real token count
                    console.print(f"request {i + 1}: [green]admitted[/], estimated 2,000 tokens, used {actual:,}")
                admitted += 1
            except RateLimitExceeded as error:
                exceeded = ", ".join(f"{s.entity_id}/{s.name}" for s in error.exceeded)
                console.print(
                    f"request {i + 1}: [red]rejected[/] by {exceeded}; Retry-After: {error.retry_after_header}s "
                    f"({error.retry_after_seconds:.2f}s)"
                )
        show_available(
            "Tokens available now",
            {
                "acme-key-1": await limiter.available("acme-key-1", "gpt-4"),
                "acme": await limiter.available("acme", "gpt-4"),
            },
        )

        console.rule("[bold]A failing call is refunded")
        before = await limiter.available("acme", "gpt-4")
        try:
            async with limiter.acquire("acme", "gpt-4", consume={"rpm": 1, "tpm": 5_000}):
                raise TimeoutError("the upstream model timed out")
        except TimeoutError as error:
            console.print(f"the call failed ({error}); its 5,000 tokens went back")
        after = await limiter.available("acme", "gpt-4")
        console.print(f"acme tpm before {before['tpm']:,.1f}, after {after['tpm']:,.1f}")
        wait = await limiter.time_until_available("acme-key-1", "gpt-4", {"rpm": 1, "tpm": 2_000})
        console.print(f"acme-key-1 can make its next call in {wait:.2f}s")

        await usage(limiter, endpoint_url, admitted)


def run_aggregator(endpoint_url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What Lambda does on AWS: read the table's stream, build the events, invoke the handler."""
    from aggregator.handler import handler

    with StreamReader(TABLE, endpoint_url=endpoint_url, region=REGION) as reader:
        events = [event for batch in reader.read() for event in lambda_events(reader.stream_arn, batch.records)]
    with lambda_environment(endpoint_url):  # AWS_ENDPOINT_URL, as an emulator-backed function would have
        responses = [handler(event, None) for event in events]
    return events, responses


def show_usage(title: str, snapshots: list[UsageSnapshot], summaries: list[UsageSummary]) -> None:
    names = sorted({name for s in snapshots for name in s.counters} | {name for s in summaries for name in s.counters})
    table = Table(title=title)
    for column in ("entity", "window", "from (UTC)"):
        table.add_column(column)
    for column in ("acquires", *names):
        table.add_column(column, justify="right")
    for s in snapshots:
        table.add_row(
            s.entity_id, s.window, f"{s.window_start:%Y-%m-%d %H:%M}", str(s.events),
            *(f"{s.counters.get(name, 0):,.1f}" for name in names),
        )
    for total in summaries:
        table.add_row(
            f"[bold]{total.entity_id}[/]", f"{total.window} total", f"{total.start:%Y-%m-%d}" if total.start else "-",
            f"[bold]{total.events}[/]", *(f"[bold]{total.counters.get(name, 0):,.1f}[/]" for name in names),
        )
    console.print(table)


async def usage(limiter: RateLimiter, endpoint_url: str, key_calls: int) -> None:
    console.rule("[bold]Usage: the aggregator Lambda on the table's DynamoDB Stream")
    events, responses = await asyncio.to_thread(run_aggregator, endpoint_url)
    failures = [f for response in responses for f in response["batchItemFailures"]]
    records = sum(len(event["Records"]) for event in events)
    console.print(f"{records} stream records in {len(events)} Lambda event(s); batch item failures: {failures or 'none'}")
    snapshots = await limiter.get_usage_snapshots("acme-key-1", "gpt-4")
    snapshots += await limiter.get_usage_snapshots("acme", "gpt-4")  # the cascade parent counts its child's use
    summaries = [
        await limiter.get_usage_summary("acme-key-1", "gpt-4", window="daily"),
        await limiter.get_usage_summary("acme", "gpt-4", window="daily"),
    ]
    show_usage("gpt-4 usage: hourly snapshots and daily totals", snapshots, summaries)
    console.print(
        f"acme counts its key's {key_calls} calls (cascade) and its own failed call: admitted, then refunded, "
        "so it adds an acquire and no consumption"
    )
    # Lambda may deliver a batch again (retries, bisection): the snapshots remember what they hold.
    await asyncio.to_thread(run_aggregator, endpoint_url)
    again = [await limiter.get_usage_summary(entity, "gpt-4", window="daily") for entity in ("acme-key-1", "acme")]
    same = [a.counters for a in again] == [s.counters for s in summaries]
    console.print(f"the whole stream delivered again: totals {'unchanged' if same else '[red]CHANGED[/]'}")


def main() -> None:
    console.print("[bold]zae-limiter demo[/] on the embedded DynamoDB (moto server on 127.0.0.1)")
    with LocalDynamoDB() as endpoint_url:
        console.print(f"endpoint: {endpoint_url}")
        asyncio.run(run(endpoint_url))


if __name__ == "__main__":
    main()
