"""This package's side of the benchmark: one scenario on its own table, through the public API only.

Requests and consumed capacity come from `limiter.stats`, so the figures follow whatever transport
the limiter uses. Limits are stored with `set_limits` (the same on the published side, where only
stored limits enable its rejection cache), and `acquire` is called without `limits=`.

Tables are the schema module's, less the DynamoDB Stream (on both sides): moto deep-copies a table,
its stream records included, on every TransactWriteItems, so with a stream each transaction is slower
than the last (40 ms, then 350 ms after 500 of them, here), which would measure the emulator rather
than the client. On AWS a stream costs the writer nothing.
"""

from __future__ import annotations

from typing import Any

import time

import boto3

from .. import Limit, RateLimiter, RateLimitExceeded, SyncRateLimiter, schema
from .engine import Session
from .spec import Scenario, async_op, sync_op

ENTITY = "bench-key"
PARENT = "bench-project"
RESOURCE = "bench-model"


def make_limit(spec: Any) -> Limit:
    return getattr(Limit, f"per_{spec.period}")(spec.name, spec.rate)


def _client(endpoint_url: str, region: str) -> Any:
    """A plain client of its own: what it sends is never counted in a limiter's stats."""
    return boto3.session.Session().client(
        "dynamodb", region_name=region, endpoint_url=endpoint_url,
        aws_access_key_id="local", aws_secret_access_key="local",
    )


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
            if self.scenario.cascade:
                admin.create_entity(PARENT)
                admin.create_entity(ENTITY, parent_id=PARENT, cascade=True)
                admin.set_limits(PARENT, limits, resource=RESOURCE)
            admin.set_limits(ENTITY, limits, resource=RESOURCE)
        finally:
            admin.close()

    def scan(self) -> list[dict]:
        return scan_table(self.endpoint_url, self.region, self.table_name)

    def open_sync(self, track_capacity: bool) -> Session:
        limiter = SyncRateLimiter(**self._settings(track_capacity))
        consume = self.scenario.consume
        op = sync_op(self.scenario, lambda: limiter.acquire(ENTITY, RESOURCE, consume=consume), RateLimitExceeded)
        return Session(op=op, counts=limiter.stats.snapshot, close=limiter.close)

    async def open_async(self, track_capacity: bool) -> Session:
        limiter = RateLimiter(**self._settings(track_capacity))
        consume = self.scenario.consume
        op = async_op(self.scenario, lambda: limiter.acquire(ENTITY, RESOURCE, consume=consume), RateLimitExceeded)
        return Session(op=op, counts=limiter.stats.snapshot, close=limiter.close)


def count_requests(scenario: Scenario, endpoint_url: str, table_name: str, apis: tuple[str, ...] = ("sync", "async"),
                   iterations: int = 5, limiter_options: dict | None = None) -> dict[str, dict]:
    """Per API: warm up, then run `iterations` acquires of `scenario` at concurrency 1; the cell's counts.

    The request counts of a warm acquire are deterministic (what the tests pin down). The configuration
    cache (and the local rejection cache, where the scenario opts in) is held for an hour here unless
    `limiter_options` says otherwise, so that a slow machine cannot add a reload. The APIs take turns on one table, each through a limiter of its own."""
    from .engine import Settings, measure_cell

    held = {"config_cache_seconds": 3600}
    if scenario.our_options.get("reject_cache_seconds"):
        held["reject_cache_seconds"] = 3600  # the scenario opts in: keep its view fresh however slow the run
    options = {**held, **(limiter_options or {})}
    target = OursTarget(scenario, endpoint_url, table_name, limiter_options=options)
    target.prepare()
    settings = Settings(seconds=None, iterations=iterations, warmup=3, warmup_seconds=3600.0, concurrencies=(1,))
    return {api: measure_cell(target, api, 1, settings, seconds=None, iterations=iterations) for api in apis}
