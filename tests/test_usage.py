"""The usage read API, sync and async: snapshots the aggregator wrote from the real stream, read back by
entity (its partition) and by resource (GSI2), filtered by window and range, and summed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from aggregator.handler import process_event
from aggregator.snapshots import Settings
from usage_stream import set_times, stream_event
from zae_limiter import Limit, UsageSnapshot, UsageSummary, ValidationError
from zae_limiter.core import usage

UTC = timezone.utc
TPM = [Limit.per_minute("tpm", 1_000)]
T = datetime(2026, 3, 1, tzinfo=UTC)


def at(hour: int, minute: int = 0) -> datetime:
    return T + timedelta(hours=hour, minutes=minute)


# (entity, resource, tokens, when): one acquire each, so one usage record each.
ACQUIRES = [
    ("a", "gpt-4", 10, at(10, 5)),
    ("a", "gpt-4", 20, at(10, 55)),
    ("a", "gpt-4", 40, at(11, 10)),
    ("a", "claude", 80, at(10, 30)),
    ("b", "gpt-4", 160, at(10, 20)),
    ("b", "gpt-4", 320, at(12, 0)),
]


@pytest.fixture
def usage_limiter(make_limiter: Any, endpoint_url: str, table_name: str, dynamodb: Any) -> Any:
    """A limiter (sync, or async through the adapter) on a table whose snapshots hold ACQUIRES."""
    limiter = make_limiter()
    for entity, resource, tokens, _ in ACQUIRES:
        with limiter.acquire(entity, resource, TPM, consume={"tpm": tokens}):
            pass
    event = set_times(stream_event(endpoint_url, table_name), [when for *_, when in ACQUIRES])
    outcome = process_event(event, Settings(("hourly", "daily")), lambda region: dynamodb)
    assert outcome.response() == {"batchItemFailures": []}
    return limiter


def rows(snaps: list[UsageSnapshot]) -> list[tuple[str, str, int, float, int]]:
    return [(s.entity_id, s.resource, s.window_start.hour, s.counters["tpm"], s.events) for s in snaps]


def test_by_entity_and_resource(usage_limiter):
    snaps = usage_limiter.get_usage_snapshots("a", "gpt-4")
    assert rows(snaps) == [("a", "gpt-4", 10, 30.0, 2), ("a", "gpt-4", 11, 40.0, 1)]
    assert snaps[0] == UsageSnapshot("a", "gpt-4", "hourly", at(10), {"tpm": 30.0}, 2)
    daily = usage_limiter.get_usage_snapshots(entity_id="a", resource="gpt-4", window="daily")
    assert [(s.window, s.window_start, s.counters) for s in daily] == [("daily", T, {"tpm": 70.0})]


def test_by_entity_across_resources(usage_limiter):
    assert rows(usage_limiter.get_usage_snapshots(entity_id="a")) == [
        ("a", "claude", 10, 80.0, 1),
        ("a", "gpt-4", 10, 30.0, 2),
        ("a", "gpt-4", 11, 40.0, 1),
    ]
    assert [s.counters for s in usage_limiter.get_usage_snapshots(entity_id="a", window="daily")] == [
        {"tpm": 80.0},
        {"tpm": 70.0},
    ]


def test_by_resource_through_the_index(usage_limiter):
    assert rows(usage_limiter.get_usage_snapshots(resource="gpt-4")) == [
        ("a", "gpt-4", 10, 30.0, 2),
        ("b", "gpt-4", 10, 160.0, 1),
        ("a", "gpt-4", 11, 40.0, 1),
        ("b", "gpt-4", 12, 320.0, 1),
    ]
    assert rows(usage_limiter.get_usage_snapshots(resource="claude")) == [("a", "claude", 10, 80.0, 1)]
    assert usage_limiter.get_usage_snapshots(resource="nothing-here") == []


def test_ranges_are_half_open_on_window_start(usage_limiter):
    # [11:00, 12:00): the 12:00 snapshot starts at the end, so it is out, by resource and by entity.
    assert rows(usage_limiter.get_usage_snapshots(resource="gpt-4", start=at(11), end=at(12))) == [("a", "gpt-4", 11, 40.0, 1)]
    assert rows(usage_limiter.get_usage_snapshots("b", "gpt-4", start=at(11), end=at(12))) == []
    assert rows(usage_limiter.get_usage_snapshots("b", start=at(10, 30), end=at(12, 1))) == [("b", "gpt-4", 12, 320.0, 1)]
    assert rows(usage_limiter.get_usage_snapshots("b", "gpt-4", start=at(12))) == [("b", "gpt-4", 12, 320.0, 1)]
    assert rows(usage_limiter.get_usage_snapshots(resource="gpt-4", end=at(10, 1))) == [
        ("a", "gpt-4", 10, 30.0, 2),
        ("b", "gpt-4", 10, 160.0, 1),
    ]
    # Any timezone: 06:00 in New York (UTC-5 in March) is 11:00 UTC.
    new_york = timezone(timedelta(hours=-5))
    assert rows(usage_limiter.get_usage_snapshots("a", "gpt-4", start=datetime(2026, 3, 1, 6, tzinfo=new_york))) == [
        ("a", "gpt-4", 11, 40.0, 1)
    ]


def test_summary_totals_per_limit(usage_limiter):
    summary = usage_limiter.get_usage_summary(resource="gpt-4")
    assert summary == UsageSummary(
        entity_id=None, resource="gpt-4", window="hourly", start=at(10), end=at(13),
        counters={"tpm": 550.0}, events=5, snapshots=4,
    )
    ranged = usage_limiter.get_usage_summary(entity_id="a", window="hourly", start=at(10), end=at(11))
    assert (ranged.start, ranged.end, ranged.counters, ranged.events, ranged.snapshots) == (at(10), at(11), {"tpm": 110.0}, 3, 2)
    daily = usage_limiter.get_usage_summary("b", "gpt-4", window="daily")
    assert (daily.start, daily.end, daily.counters) == (T, T + timedelta(days=1), {"tpm": 480.0})
    empty = usage_limiter.get_usage_summary(entity_id="nobody")
    assert (empty.start, empty.end, empty.counters, empty.events, empty.snapshots) == (None, None, {}, 0, 0)


def test_reads_every_page(usage_limiter, monkeypatch):
    original = usage.query_request
    monkeypatch.setattr(usage, "query_request", lambda table, query: {**original(table, query), "Limit": 1})
    assert len(usage_limiter.get_usage_snapshots(resource="gpt-4")) == 4
    assert len(usage_limiter.get_usage_snapshots(entity_id="a")) == 3
    assert usage_limiter.get_usage_summary("a", "gpt-4").counters == {"tpm": 70.0}


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({}, "entity_id"),
        ({"entity_id": "a", "window": "weekly"}, "window"),
        ({"entity_id": "a#b"}, "entity_id"),
        ({"resource": ""}, "resource"),
        ({"entity_id": "a", "start": datetime(2026, 3, 1)}, "start"),
        ({"entity_id": "a", "end": datetime(2026, 3, 1)}, "end"),
        ({"entity_id": "a", "start": "2026-03-01"}, "start"),
        ({"entity_id": "a", "start": at(12), "end": at(11)}, "end"),
    ],
)
def test_bad_arguments_name_the_field(make_limiter, kwargs, field):
    limiter = make_limiter()
    for method in (limiter.get_usage_snapshots, limiter.get_usage_summary):
        with pytest.raises(ValidationError) as raised:
            method(**kwargs)
        assert raised.value.field == field
