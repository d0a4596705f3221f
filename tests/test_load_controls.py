"""Operator controls under load: while several processes (sync and async clients) acquire, adjust and
refund on one key that cascades to a parent, this process tops the key up, resets it and moves it from
one parent to another. Afterwards:

- nothing lost: the key's consumed counters equal what every worker's leases hold, and the two parents'
  counters together hold the same (each lease's tokens were taken from, and given back to, the parent it
  was admitted under, whichever that was when the refund came);
- no over-admission: `req` (only ever taken and given back) stays within capacity + refill + what the
  top-ups added + one capacity per reset.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid

import pytest

from load_worker import LIMITS, work
from zae_limiter import Limit, SyncRateLimiter
from zae_limiter.core import schema

pytestmark = pytest.mark.server

SECONDS = 3.0
KINDS = ["sync", "sync", "async"]
TOP_UP = 5  # req tokens per top-up
# The key's limits: the names the workers take, with a small `req` (cascade transactions are slow on the
# emulator, so the run must reach the capacity in a few seconds).
KEY_LIMITS = [Limit("req", 10, 1, 3600), Limit("tok", 1200, 1, 3600)]


def test_top_up_reset_and_moves_under_load_lose_nothing_and_never_over_admit(endpoint_url, table_name, dynamodb):
    run = uuid.uuid4().hex[:6]
    key, orgs = f"key-{run}", (f"org1-{run}", f"org2-{run}")
    roomy = [Limit(limit.name, limit.capacity * 100, limit.refill_amount * 100, limit.refill_period_seconds) for limit in LIMITS]
    with SyncRateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url) as admin:
        for org in orgs:
            admin.create_entity(org)
            admin.set_limits(org, roomy, resource="api")
        admin.create_entity(key, parent_id=orgs[0], cascade=True)
        admin.set_limits(key, KEY_LIMITS, resource="api")
        started = time.monotonic()
        top_ups = resets = moves = 0
        context = multiprocessing.get_context("spawn")
        with context.Pool(len(KINDS)) as pool:
            pending = pool.starmap_async(work, [(kind, endpoint_url, table_name, key, SECONDS, seed) for seed, kind in enumerate(KINDS)])
            time.sleep(0.8)  # the workers have started and emptied the bucket
            while not pending.ready():
                admin.top_up(key, "api", req=TOP_UP)
                top_ups += 1
                if resets < 1:
                    admin.reset(key, "api")
                    resets += 1
                admin.set_parent(key, orgs[(moves + 1) % 2])
                moves += 1
                time.sleep(0.3)
            results = pending.get()
        elapsed = time.monotonic() - started

    assert all(r["unavailable"] == 0 for r in results), results
    assert top_ups >= 2 and moves >= 2 and resets == 1
    assert sum(r["rejected"] for r in results) > 0, "the run must push past the capacity"
    held = {name: sum(r["held"][name] for r in results) for name in ("req", "tok")}

    def counters(entity_id: str) -> dict[str, int]:
        item = dynamodb.get_item(TableName=table_name, Key=schema.bucket_key(entity_id, "api"), ConsistentRead=True).get("Item")
        return {name: value for name, value in schema.bucket_counters(item).items() if name in held}

    assert counters(key) == held  # nothing lost, nothing counted twice
    both = [counters(org) for org in orgs]
    assert {name: both[0].get(name, 0) + both[1].get(name, 0) for name in held} == held
    req = KEY_LIMITS[0]
    refill = req.refill_milli * elapsed / req.refill_period_seconds
    assert held["req"] <= req.capacity_milli + refill + top_ups * TOP_UP * 1000 + resets * req.capacity_milli
