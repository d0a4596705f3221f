"""Client memory per entity: what a limiter keeps for each (entity, resource) it has served.

    python -m zae_limiter.benchmark.memory [--entities N] [--resource-defaults | --no-resource-defaults]

On the embedded DynamoDB, one SyncRateLimiter acquires once for each of N entities (two limits, from the
resource's stored defaults, or given in the call), then every entity again, so each cache holds its steady
entry. The figure is the growth of the Python heap (tracemalloc, after a garbage collection) from after
the first entity to after the last, divided by the entities between: the bucket views, the cached
configurations and anything else kept per key, with the fixed costs (clients, connections) left out.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc
import uuid
from typing import Sequence

from .. import Limit, SyncRateLimiter
from ..local import LocalDynamoDB, ensure_table

RESOURCE = "gpt"
LIMITS = (Limit.per_minute("rpm", 100), Limit.per_minute("tpm", 10_000))


def measure(endpoint_url: str, entities: int, stored: bool) -> float:
    """Bytes of client heap per entity served (see the module's docstring)."""
    table = f"mem_{uuid.uuid4().hex[:8]}"
    ensure_table(table, endpoint_url=endpoint_url, region="us-east-1")
    limits = None if stored else list(LIMITS)
    with SyncRateLimiter(table_name=table, endpoint_url=endpoint_url, region="us-east-1") as limiter:
        if stored:
            limiter.set_resource_defaults(RESOURCE, list(LIMITS))

        def serve(number: int) -> None:
            with limiter.acquire(f"api-key-{number:08d}", RESOURCE, limits, consume={"rpm": 1, "tpm": 10}):
                pass

        serve(0)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for lap in range(2):
            for number in range(1, entities + 1):
                serve(number)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    return (after - before) / entities


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zae_limiter.benchmark.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=5_000, help="entities served (default 5000)")
    parser.add_argument("--resource-defaults", action=argparse.BooleanOptionalAction, default=True,
                        help="limits stored as the resource's defaults (default), or given in each call")
    args = parser.parse_args(argv)
    if args.entities < 1:
        parser.error("--entities: must be at least 1")
    with LocalDynamoDB() as endpoint_url:
        per_entity = measure(endpoint_url, args.entities, args.resource_defaults)
    where = "stored resource defaults" if args.resource_defaults else "limits given in each call"
    print(f"{per_entity:,.0f} bytes of client memory per entity served ({args.entities:,} entities, two limits, {where})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
