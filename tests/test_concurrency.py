"""No over-admission: many threads and processes on one bucket against the embedded server."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor

import pytest

from hammer import HAMMERED, hammer
from zae_limiter import Limit, SyncRateLimiter

pytestmark = pytest.mark.server


def test_eight_threads_admit_exactly_the_capacity(endpoint_url, table_name):
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: hammer(endpoint_url, table_name, "k", 120.0, [HAMMERED]), range(8)))
    admitted = sum(a for a, _ in results)
    rejected = sum(r for _, r in results)
    assert rejected > 0, "the test must push past the capacity"
    assert admitted == 40  # capacity 40 plus at most a sliver of one refilled token


def test_four_processes_admit_exactly_the_capacity(endpoint_url, table_name):
    with SyncRateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url) as setup:
        setup.set_limits("k", [HAMMERED], resource="api")  # stored, so the workers pass no limits
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        results = pool.starmap(hammer, [(endpoint_url, table_name, "k", 120.0)] * 4)
    assert sum(r for _, r in results) > 0
    assert sum(a for a, _ in results) == 40


def test_cascade_never_lets_the_parent_over_admit(endpoint_url, table_name):
    with SyncRateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url) as setup:
        setup.create_entity("proj")
        setup.set_limits("proj", [Limit("req", 30, 1, 3600)], resource="api")
        for child in ("a", "b", "c"):
            setup.create_entity(child, parent_id="proj", cascade=True)
            setup.set_limits(child, [Limit("req", 20, 1, 3600)], resource="api")
    jobs = ["a", "a", "b", "b", "c", "c"]
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda child: (child, hammer(endpoint_url, table_name, child, 120.0)), jobs))
    per_child: dict[str, int] = {}
    for child, (admitted, _) in results:
        per_child[child] = per_child.get(child, 0) + admitted
    assert sum(per_child.values()) == 30  # the parent's capacity, exactly
    assert all(count <= 20 for count in per_child.values())
    with SyncRateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url) as check:
        assert check.available("proj", "api")["req"] < 1
        for child, count in per_child.items():
            assert check.available(child, "api")["req"] == pytest.approx(20 - count, abs=0.01)
