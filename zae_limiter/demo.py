"""The end-to-end demo on the embedded backend: `make demo` (or `python -m zae_limiter.demo`)."""

from __future__ import annotations

import asyncio

from rich.console import Console
from rich.table import Table

from zae_limiter import Limit, RateLimiter, RateLimitExceeded
from zae_limiter.local import LocalDynamoDB, ensure_table

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
        for i in range(4):
            try:
                async with limiter.acquire("acme-key-1", "gpt-4", consume={"rpm": 1, "tpm": 2_000}) as lease:
                    actual = 1_500 + 400 * i
                    await lease.adjust(tpm=actual - 2_000)  # the LLM reported its real token count
                    console.print(f"request {i + 1}: [green]admitted[/], estimated 2,000 tokens, used {actual:,}")
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


def main() -> None:
    console.print("[bold]zae-limiter demo[/] on the embedded DynamoDB (moto server on 127.0.0.1)")
    with LocalDynamoDB() as endpoint_url:
        console.print(f"endpoint: {endpoint_url}")
        asyncio.run(run(endpoint_url))


if __name__ == "__main__":
    main()
