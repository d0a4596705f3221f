"""This package's side of the benchmark: one scenario on its own table, through the public API only.

Requests and consumed capacity come from `limiter.stats`, so the figures follow whatever transport
the limiter uses. Limits are stored with `set_limits` (the same on the published side, where only
stored limits enable its rejection cache), and `acquire` is called without `limits=`.

The cold scenario's entities (`Scenario.entities`, thousands) get their stored limits from a batch:
`set_limits` on the first one, whose item is then copied to the others with BatchWriteItem (25 a
request), so they hold exactly what `set_limits` writes at a fraction of the time on the emulator.

Tables are the schema module's, less the DynamoDB Stream (on both sides): moto deep-copies a table,
its stream records included, on every TransactWriteItems, so with a stream each transaction is slower
than the last (40 ms, then 350 ms after 500 of them, here), which would measure the emulator rather
than the client. On AWS a stream costs the writer nothing.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Callable

import boto3

from .. import Limit, RateLimiter, RateLimitExceeded, SyncRateLimiter
from ..core import schema
from .engine import Session
from .spec import Scenario, async_op, sync_op

ENTITY = "bench-key"
PARENT = "bench-project"
RESOURCE = "bench-model"
BATCH = 25  # BatchWriteItem's most


def make_limit(spec: Any) -> Limit:
    return getattr(Limit, f"per_{spec.period}")(spec.name, spec.rate, spec.burst)


def rotation_entity(number: int) -> str:
    return f"bench-cold-{number:06d}"


def rotation_share(entities: int, segment: tuple[int, int], part: tuple[int, int]) -> range:
    """The entity numbers of this process's share (`part`: index, count) of this cell's segment (index,
    count) of a rotation: every count-th from the segment's start."""
    first, segments = segment
    index, count = part
    return range(first * entities // segments + index, (first + 1) * entities // segments, count)


def rotation(entities: int, segment: tuple[int, int], part: tuple[int, int]) -> Callable[[], str]:
    """The entity of each next acquire: this process's share of the rotation, in order, starting over
    when it is spent (one lap). Thread-safe."""
    share = rotation_share(entities, segment, part)
    counter = itertools.count()
    return lambda: rotation_entity(share[next(counter) % len(share)])


def _client(endpoint_url: str, region: str) -> Any:
    """A plain client of its own: what it sends is never counted in a limiter's stats."""
    return boto3.session.Session().client(
        "dynamodb", region_name=region, endpoint_url=endpoint_url,
        aws_access_key_id="local", aws_secret_access_key="local",
    )


def batch_write(client: Any, table_name: str, items: list[dict]) -> None:
    """PutRequests 25 at a time, sending back what DynamoDB leaves unprocessed until it is all written."""
    for first in range(0, len(items), BATCH):
        pending = [{"PutRequest": {"Item": item}} for item in items[first:first + BATCH]]
        for attempt in range(50):
            unprocessed = client.batch_write_item(RequestItems={table_name: pending}).get("UnprocessedItems", {})
            pending = unprocessed.get(table_name, [])
            if not pending:
                break
            time.sleep(min(1.0, 0.01 * 2**attempt))
        else:
            raise RuntimeError(f"BatchWriteItem left {len(pending)} items unprocessed on {table_name}")


def create_table(endpoint_url: str, region: str, table_name: str) -> None:
    """The schema module's table without its stream (see above), ACTIVE when this returns."""
    request = schema.create_table_request(table_name)
    request.pop("StreamSpecification", None)
    client = _client(endpoint_url, region)
    try:
        client.create_table(**request)
        while client.describe_table(TableName=table_name)["Table"]["TableStatus"] != "ACTIVE":
            time.sleep(0.05)
    finally:
        client.close()


def scan_table(endpoint_url: str, region: str, table_name: str) -> list[dict]:
    """Every item of the table."""
    client = _client(endpoint_url, region)
    try:
        items: list[dict] = []
        for page in client.get_paginator("scan").paginate(TableName=table_name, ConsistentRead=True):
            items.extend(page["Items"])
        return items
    finally:
        client.close()


class OursTarget:
    """`scenario` on `table_name`, measured through SyncRateLimiter or RateLimiter."""

    part = (0, 1)  # this process's share of a rotation (set in each process of a multi-process cell)
    segment = (0, 1)  # this cell's share of the rotation (set by cells.LocalSystem)

    def __init__(
        self,
        scenario: Scenario,
        endpoint_url: str,
        table_name: str,
        region: str = "us-east-1",
        limiter_options: dict | None = None,
    ) -> None:
        self.scenario = scenario
        self.endpoint_url = endpoint_url
        self.table_name = table_name
        self.region = region
        self.limiter_options = {**scenario.our_options, **(limiter_options or {})}

    def _settings(self, track_capacity: bool) -> dict:
        return {
            "table_name": self.table_name,
            "region": self.region,
            "endpoint_url": self.endpoint_url,
            "track_capacity": track_capacity,
            **self.limiter_options,
        }

    def prepare(self) -> None:
        """The table, the entities (for cascade) and the stored limits."""
        create_table(self.endpoint_url, self.region, self.table_name)
        limits = [make_limit(spec) for spec in self.scenario.limits]
        admin = SyncRateLimiter(**self._settings(False))
        try:
            if self.scenario.entities:
                admin.set_limits(rotation_entity(0), limits, resource=RESOURCE)
                self._copy_limits(self.scenario.entities)
                return
            if self.scenario.cascade:
                admin.create_entity(PARENT)
                admin.create_entity(ENTITY, parent_id=PARENT, cascade=True)
                admin.set_limits(PARENT, limits, resource=RESOURCE)
            admin.set_limits(ENTITY, limits, resource=RESOURCE)
        finally:
            admin.close()

    def _copy_limits(self, entities: int) -> None:
        """Entity 0's stored-limits item, as set_limits wrote it, copied to entities 1 .. entities-1."""
        client = _client(self.endpoint_url, self.region)
        try:
            key = schema.entity_limits_key(rotation_entity(0), RESOURCE)
            template = client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True)["Item"]
            items = [{**template, **schema.entity_limits_key(rotation_entity(number), RESOURCE)}
                     for number in range(1, entities)]
            batch_write(client, self.table_name, items)
        finally:
            client.close()

    def scan(self) -> list[dict]:
        if self.scenario.entities:
            return self._first_buckets()
        return scan_table(self.endpoint_url, self.region, self.table_name)

    def _first_buckets(self, count: int = 200) -> list[dict]:
        """The bucket items of the first entities of the capacity pass's segment of a rotation: all that
        its acquires can write (a scan of thousands of entities takes the emulator tens of seconds)."""
        first = rotation(self.scenario.entities, (0, self.segment[1]), (0, 1))
        keys = [schema.bucket_key(first(), RESOURCE) for _ in range(count)]
        unique = list({repr(key): key for key in keys}.values())
        client = _client(self.endpoint_url, self.region)
        try:
            items: list[dict] = []
            for start in range(0, len(unique), 100):  # BatchGetItem's most
                pending = {self.table_name: {"Keys": unique[start:start + 100], "ConsistentRead": True}}
                while pending:
                    got = client.batch_get_item(RequestItems=pending)
                    items.extend(got["Responses"].get(self.table_name, []))
                    pending = got.get("UnprocessedKeys") or {}
            return items
        finally:
            client.close()

    def usage(self) -> dict[str, int] | None:
        """Consumed thousandths per `entity limit` on the scenario's buckets (None for a rotation)."""
        if self.scenario.entities:
            return None
        client = _client(self.endpoint_url, self.region)
        try:
            usage = {}
            for entity in (ENTITY, PARENT) if self.scenario.cascade else (ENTITY,):
                got = client.get_item(TableName=self.table_name, Key=schema.bucket_key(entity, RESOURCE),
                                      ConsistentRead=True)
                for name, milli in schema.bucket_counters(got.get("Item")).items():
                    usage[f"{entity} {name}"] = milli
            return usage
        finally:
            client.close()

    def warmup_lap(self) -> int | None:
        """A revisiting scenario warms up with one lap of this process's share of the rotation."""
        if not self.scenario.revisit:
            return None
        return len(rotation_share(self.scenario.entities, self.segment, self.part))

    def after_lap(self) -> None:
        """Every entity of the lap comes back past its configuration cache, however fast the lap ran: the
        scenario measures revisits of expired entries, which a fast machine's lap alone would not reach."""
        time.sleep(self.scenario.our_options.get("config_cache_seconds", 0.0))

    def _entity(self) -> Callable[[], str]:
        if self.scenario.entities:
            return rotation(self.scenario.entities, self.segment, self.part)
        return lambda: ENTITY

    def open_sync(self, track_capacity: bool) -> Session:
        limiter = SyncRateLimiter(**self._settings(track_capacity))
        consume, entity = self.scenario.consume, self._entity()
        op = sync_op(self.scenario, lambda: limiter.acquire(entity(), RESOURCE, consume=consume), RateLimitExceeded)
        return Session(op=op, counts=limiter.stats.snapshot, close=limiter.close)

    async def open_async(self, track_capacity: bool) -> Session:
        limiter = RateLimiter(**self._settings(track_capacity))
        consume, entity = self.scenario.consume, self._entity()
        op = async_op(self.scenario, lambda: limiter.acquire(entity(), RESOURCE, consume=consume), RateLimitExceeded)
        return Session(op=op, counts=limiter.stats.snapshot, close=limiter.close)


def count_requests(scenario: Scenario, endpoint_url: str, table_name: str, apis: tuple[str, ...] = ("sync", "async"),
                   iterations: int = 5, limiter_options: dict | None = None) -> dict[str, dict]:
    """Per API: warm up, then run `iterations` acquires of `scenario` at concurrency 1; the cell's counts.

    The request counts of a warm acquire are deterministic (what the tests pin down). The configuration
    cache (and the local rejection cache, where the scenario opts in) is held for an hour here unless
    `limiter_options` says otherwise, so that a slow machine cannot add a reload. The APIs take turns on one table, each through a limiter of its own."""
    from .cells import Cell
    from .engine import Settings, summary

    # A cold scenario's own short cache is what it measures; the others' is held.
    held = {} if "config_cache_seconds" in scenario.our_options else {"config_cache_seconds": 3600}
    if scenario.our_options.get("reject_cache_seconds"):
        held["reject_cache_seconds"] = 3600  # the scenario opts in: keep its view fresh however slow the run
    options = {**held, **(limiter_options or {})}
    target = OursTarget(scenario, endpoint_url, table_name, limiter_options=options)
    target.prepare()
    settings = Settings(seconds=None, iterations=iterations, warmup=3, warmup_seconds=3600.0, concurrencies=(1,))
    cells = {}
    for number, api in enumerate(apis):
        target.segment = (number, len(apis))  # each API meets entities of a rotation that the other has not
        cell = Cell(target, api, 1, settings)
        try:
            cell.open()
            cells[api] = summary(cell.run(None, iterations), 1)
        finally:
            cell.close()
    return cells
