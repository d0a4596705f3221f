"""OpenTelemetry metrics, read with the SDK's in-memory reader: what each counter and the latency
histogram hold after known acquires, that no series carries an entity id, and that nothing from
OpenTelemetry is imported by a limiter without metrics (or at all when the extra is missing)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from zae_limiter import Limit, RateLimiter, RateLimiterUnavailable, RateLimitExceeded, SyncRateLimiter, ValidationError
from zae_limiter.local import free_port
from zae_limiter.metrics import LimiterMetrics


RPM = [Limit.per_minute("rpm", 5)]
ENTITY = "entity-secret-7"


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def metrics(reader: InMemoryMetricReader) -> LimiterMetrics:
    return LimiterMetrics(meter_provider=MeterProvider(metric_readers=[reader]))


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def values(reader: InMemoryMetricReader, name: str) -> dict[tuple, float]:
    """Counter values by their attributes (sorted (key, value) pairs)."""
    return {tuple(sorted(p.attributes.items())): p.value for p in points(reader).get(name, [])}


def durations(reader: InMemoryMetricReader) -> dict[str, int]:
    """Histogram counts by outcome (each point also checked for its resource and a positive sum)."""
    counts: dict[str, int] = {}
    for point in points(reader).get("zae_limiter.core.acquire.duration", []):
        assert set(point.attributes) == {"zae_limiter.resource", "zae_limiter.outcome"}
        assert point.sum > 0
        counts[point.attributes["zae_limiter.outcome"]] = point.count
    return counts


def make(cls: type, endpoint_url: str, table_name: str, **options: Any) -> Any:
    return cls(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url,
               **options)


def refuse(limiter: SyncRateLimiter) -> RateLimitExceeded:
    with pytest.raises(RateLimitExceeded) as raised:
        with limiter.acquire(ENTITY, "chat", RPM, consume={"rpm": 1}):
            pass
    return raised.value


@pytest.mark.server
def test_admitted_refused_and_refused_locally(endpoint_url: str, table_name: str, reader: InMemoryMetricReader,
                                              metrics: LimiterMetrics) -> None:
    first = make(SyncRateLimiter, endpoint_url, table_name, metrics=metrics)
    # Another client, no view yet, with the opt-in local rejection (refused_locally counts those).
    second = make(SyncRateLimiter, endpoint_url, table_name, metrics=metrics, reject_cache_seconds=30)
    try:
        for _ in range(5):
            with first.acquire(ENTITY, "chat", RPM, consume={"rpm": 1}):
                pass
        refusals = [refuse(second), refuse(second), refuse(first)]
    finally:
        first.close()
        second.close()
    local = sum(error.decided_locally for error in refusals)
    assert not refusals[0].decided_locally  # the second client had to ask DynamoDB once...
    assert refusals[1].decided_locally  # ...then knew
    chat, rpm = ("zae_limiter.resource", "chat"), ("zae_limiter.limit", "rpm")
    assert values(reader, "zae_limiter.acquires.admitted") == {(chat,): 5}
    assert values(reader, "zae_limiter.acquires.refused") == {(rpm, chat): 3}
    assert values(reader, "zae_limiter.acquires.refused_locally") == {(rpm, chat): local}
    assert "zae_limiter.acquires.unavailable_allowed" not in points(reader)
    assert durations(reader) == {"admitted": 5, "refused": 3}
    for series in points(reader).values():  # never an entity id: one series per key would be unbounded
        for point in series:
            assert ENTITY not in str(point.attributes)


@pytest.mark.server
def test_the_async_limiter_reports_the_same(endpoint_url: str, table_name: str, reader: InMemoryMetricReader,
                                            metrics: LimiterMetrics) -> None:
    async def run() -> None:
        limiter = make(RateLimiter, endpoint_url, table_name, metrics=metrics)
        try:
            for _ in range(5):
                async with limiter.acquire(ENTITY, "chat", RPM, consume={"rpm": 1}):
                    pass
            with pytest.raises(RateLimitExceeded):
                async with limiter.acquire(ENTITY, "chat", RPM, consume={"rpm": 1}):
                    pass
        finally:
            await limiter.close()

    asyncio.run(run())
    assert values(reader, "zae_limiter.acquires.admitted") == {(("zae_limiter.resource", "chat"),): 5}
    assert values(reader, "zae_limiter.acquires.refused") == {
        (("zae_limiter.limit", "rpm"), ("zae_limiter.resource", "chat")): 1}
    assert durations(reader) == {"admitted": 5, "refused": 1}


@pytest.mark.parametrize("policy", ["allow", "block"])
def test_unreachable_dynamodb(policy: str, reader: InMemoryMetricReader, metrics: LimiterMetrics) -> None:
    limiter = make(SyncRateLimiter, f"http://127.0.0.1:{free_port()}", "rate_limits", on_unavailable=policy,
                   metrics=metrics)
    try:
        if policy == "allow":
            with limiter.acquire(ENTITY, "chat", RPM, consume={"rpm": 1}) as lease:
                assert lease.unchecked
        else:
            with pytest.raises(RateLimiterUnavailable):
                with limiter.acquire(ENTITY, "chat", RPM, consume={"rpm": 1}):
                    pass
    finally:
        limiter.close()
    allowed = values(reader, "zae_limiter.acquires.unavailable_allowed")
    if policy == "allow":
        assert allowed == {(("zae_limiter.resource", "chat"),): 1}
        assert durations(reader) == {"unavailable_allowed": 1}
    else:
        assert allowed == {}
        assert durations(reader) == {"unavailable": 1}
    assert "zae_limiter.acquires.admitted" not in points(reader)


def test_soft_overdraws_count_once_per_limit(reader: InMemoryMetricReader, metrics: LimiterMetrics) -> None:
    # The quota model's soft limits call this for `lease.overdrawn`; the instrument is defined now.
    metrics.on_soft_overdraw("chat", ["tpm", "tpm"])
    metrics.on_soft_overdraw("chat", ["tpm", "rpm"])
    assert values(reader, "zae_limiter.soft_overdraws") == {
        (("zae_limiter.limit", "tpm"), ("zae_limiter.resource", "chat")): 2,
        (("zae_limiter.limit", "rpm"), ("zae_limiter.resource", "chat")): 1,
    }


def test_metrics_must_be_an_observer() -> None:
    with pytest.raises(ValidationError) as raised:
        SyncRateLimiter(table_name="t", region="us-east-1", metrics=object())
    assert raised.value.field == "metrics"
    assert SyncRateLimiter(table_name="t", region="us-east-1").metrics is None


@pytest.mark.server
def test_nothing_from_opentelemetry_is_imported_without_metrics(endpoint_url: str, table_name: str) -> None:
    program = f"""
import sys
from zae_limiter import Limit, SyncRateLimiter
import zae_limiter.asgi, zae_limiter.wsgi, zae_limiter.http_headers
limiter = SyncRateLimiter(table_name={table_name!r}, region="us-east-1", endpoint_url={endpoint_url!r})
with limiter.acquire("k", "chat", [Limit.per_minute("rpm", 5)], consume={{"rpm": 1}}):
    pass
limiter.close()
print(sorted(name for name in sys.modules if name.split(".")[0] == "opentelemetry"))
"""
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120,
                            env=_aws_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_missing_extra_is_one_line_naming_it() -> None:
    program = """
import sys
sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
try:
    import zae_limiter.metrics
except ImportError as error:
    print(error)
"""
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "zae_limiter.metrics needs OpenTelemetry; install the otel extra: pip install 'zae-limiter[otel]'\n")


def _aws_env() -> dict[str, str]:
    import os

    return {**os.environ, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
