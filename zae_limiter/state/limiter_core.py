"""`LimiterCore`: what the flows share between calls (the table, the clocks, the configuration cache and
the bucket views), with no I/O. Every runtime operation is a flow: a generator that yields DynamoDB calls
and decides from the answers (acquire_flow.py, lease_flow.py, entities.py, stored_limits.py, usage.py and
the reads below). `SyncRateLimiter` and `RateLimiter` run the same flows through a sync or an async driver.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

from ..core import acquire_flow, bucket, config, lease_flow, schema
from ..core.acquire import Level, amounts, reserve_return_update, statuses
from .bucket_views import BucketViews
from .reservoirs import Reservoirs
from ..core.calls import Call, Flow
from ..core.errors import RateLimiterUnavailable
from ..core.answers import backoff
from ..core.batches import batch_get
from .config_cache import ConfigCache
from ..core.config import StoredConfig
from ..core.lease_flow import LeaseState
from ..core.limits import Limit
from ..core.validation import check_id, check_number

NANOS = 1_000_000_000


class LimiterCore:
    def __init__(
        self,
        table_name: str,
        *,
        clock: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
        config_cache_seconds: float = 10.0,
        bucket_cache_size: int = 100_000,
        reject_cache_seconds: float = 0.0,
        reservoir_seconds: float = 0.0,
    ) -> None:
        self.table = check_id("table_name", table_name)
        self.clock = clock
        self.backoff = backoff  # answers.backoff: a flow's pause before it tries again
        self.configs = ConfigCache(
            self.table, check_number("config_cache_seconds", config_cache_seconds), bucket_cache_size, clock, monotonic
        )
        # Opt-in (0 = off): a view this fresh refuses without a request. It never admits, but it may
        # refuse, for that long, what tokens another client gave back meanwhile would have admitted.
        self.views = BucketViews(bucket_cache_size, monotonic, check_number("reject_cache_seconds", reject_cache_seconds))
        # Opt-in (0 = off): reserves of tokens admitted locally (reservoirs.py).
        self.reservoirs = Reservoirs(check_number("reservoir_seconds", reservoir_seconds), monotonic)

    @property
    def config_cache_seconds(self) -> float:
        return self.configs.seconds

    @property
    def bucket_cache_size(self) -> int:
        return self.views.size

    @bucket_cache_size.setter
    def bucket_cache_size(self, value: int) -> None:
        self.views.size = self.configs.size = value

    # -- caches ---------------------------------------------------------------------------------
    def invalidate_config(self) -> None:
        self.configs.invalidate()

    def known_tats(self, entity_id: str, resource: str) -> dict[str, int]:
        return self.views.known((entity_id, resource))

    def expected_tats(self, entity_id: str, resource: str) -> dict[str, int]:
        return self.views.expected((entity_id, resource))

    def remember_tats(self, entity_id: str, resource: str, tats: Mapping[str, int], complete: bool = False) -> None:
        self.views.remember((entity_id, resource), tats, complete)

    def forget_entity(self, entity_id: str) -> None:
        self.views.forget_entity(entity_id)

    def forget_bucket(self, entity_id: str, resource: str) -> None:
        self.views.forget((entity_id, resource))

    # -- flows ----------------------------------------------------------------------------------
    def batch_get(self, keys: Sequence[dict]) -> Flow[dict[tuple[str, str], dict]]:
        return batch_get(self.table, keys)

    def stored_config(self, entity_id: str, resource: str) -> Flow[StoredConfig]:
        return self.configs.stored(entity_id, resource)

    def levels(self, entity_id: str, resource: str, fallback: Sequence[Limit] | None) -> Flow[tuple[Level, ...]]:
        return self.configs.levels(entity_id, resource, fallback)

    def amounts(self, levels: Sequence[Level], consume: Any, field_name: str = "consume") -> dict[str, int]:
        return amounts(levels, consume, field_name)

    def acquire(self, entity_id: str, resource: str, limits: Sequence[Limit] | None, consume: Any,
                also: Mapping[str, Any] | None = None) -> Flow[LeaseState]:
        return acquire_flow.acquire(self, entity_id, resource, limits, consume, also)

    def adjust(self, lease: LeaseState, deltas: Mapping[str, Any], resource: str | None = None) -> Flow[None]:
        return lease_flow.adjust(self, lease, deltas, resource)

    def refund(self, lease: LeaseState) -> Flow[None]:
        return lease_flow.refund(self, lease)

    def effective_limits(self, entity_id: str, resource: str, limits: Sequence[Limit] | None) -> Flow[list[Limit]]:
        levels = yield from self.levels(entity_id, resource, limits)
        return list(levels[0].limits)

    def return_reserves(self, everything: bool = False) -> Flow[None]:
        """Give back expired reserves and count the usage admitted from them (all of it: `everything`).
        A return whose answer is lost is not sent again: its tokens stay charged until refill, and its
        usage is not counted twice."""
        for key, carry, limits in self.reservoirs.due(everything):
            request = reserve_return_update(self.table, key, limits, carry, self.clock())
            if not request["ExpressionAttributeNames"]:
                continue
            try:
                yield Call("UpdateItem", request)
            except RateLimiterUnavailable:
                continue  # an outage or a lost answer: never resent; the rest still go

    # -- reading buckets ------------------------------------------------------------------------
    def read_buckets(self, entity_ids: Sequence[str], resource: str) -> Flow[list[dict | None]]:
        items = yield from self.batch_get([schema.bucket_key(e, resource) for e in entity_ids])
        found = [items.get(config.key_id(schema.bucket_key(e, resource))) for e in entity_ids]
        for entity_id, item in zip(entity_ids, found):
            self.views.remember((entity_id, resource), schema.bucket_tats(item), complete=True)
        return found

    def available(self, entity_id: str, resource: str, limits: Sequence[Limit] | None) -> Flow[dict[str, float]]:
        levels = yield from self.levels(entity_id, resource, limits)
        (item,) = yield from self.read_buckets((entity_id,), resource)
        tats = schema.bucket_tats(item)
        now = self.clock()
        return {s.name: s.available for s in statuses(levels[0], resource, {}, tats, now)}

    def time_until_available(
        self, entity_id: str, resource: str, needed: Any, limits: Sequence[Limit] | None
    ) -> Flow[float]:
        levels = yield from self.levels(entity_id, resource, limits)
        taken = amounts(levels, needed, "needed")
        items = yield from self.read_buckets(tuple(level.entity_id for level in levels), resource)
        now = self.clock()
        wait = 0
        for level, item in zip(levels, items):
            tats = schema.bucket_tats(item)
            for limit in level.limits:
                if not limit.soft:
                    wait = max(wait, bucket.wait_ns(limit, tats.get(limit.name), now, taken.get(limit.name, 0)))
        return wait / NANOS
