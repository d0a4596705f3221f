"""`zae_limiter.local_stream`: the embedded backend's stand-in for Lambda's stream poller, used by the demo
and the CLI. Events as Lambda builds them, repeated passes, positions, and the follow loop."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime

import pytest

from usage_stream import REGION, snapshots
from zae_limiter import Limit, StorageError, SyncRateLimiter, ValidationError
from zae_limiter.local_stream import (
    AggregationRun,
    StreamReader,
    aggregate_stream,
    follow_stream,
    lambda_environment,
    lambda_events,
)

RPM = [Limit.per_minute("rpm", 100)]


def acquire(endpoint_url: str, table_name: str, entity: str, amount: float) -> None:
    with SyncRateLimiter(table_name=table_name, region=REGION, endpoint_url=endpoint_url) as limiter:
        with limiter.acquire(entity, "gpt-4", RPM, consume={"rpm": amount}):
            pass


def test_events_have_lambdas_shape(endpoint_url, table_name):
    acquire(endpoint_url, table_name, "k", 1)
    with StreamReader(table_name, endpoint_url=endpoint_url, region=REGION) as reader:
        batches = reader.read()
        records = [r for b in batches for r in b.records]
        assert isinstance(records[0]["dynamodb"]["ApproximateCreationDateTime"], datetime)  # boto3's shape
        events = lambda_events(reader.stream_arn, records, batch_size=2)
    assert [len(e["Records"]) for e in events] == [2] * (len(records) // 2) + [1] * (len(records) % 2)
    record = events[0]["Records"][0]
    assert record["eventSourceARN"].startswith(f"arn:aws:dynamodb:{REGION}:") and f":table/{table_name}/stream/" in record["eventSourceARN"]
    assert record["eventSource"] == "aws:dynamodb" and record["awsRegion"] == REGION
    created = record["dynamodb"]["ApproximateCreationDateTime"]
    assert isinstance(created, float) and created == int(created) and abs(created - time.time()) < 120
    assert json.loads(json.dumps(events)) == events  # JSON, as Lambda passes it


def test_aggregating_again_changes_nothing_and_a_reader_returns_only_new_records(endpoint_url, table_name, dynamodb):
    acquire(endpoint_url, table_name, "k", 2)
    first = aggregate_stream(table_name, endpoint_url=endpoint_url, region=REGION)
    assert (first.usage_records, first.snapshots_written, first.failures) == (1, 2, [])
    again = aggregate_stream(table_name, endpoint_url=endpoint_url, region=REGION)
    assert (again.snapshots_written, again.duplicates_skipped) == (0, 2)
    assert [v for v in snapshots(dynamodb, table_name).values()] == [({"rpm": 2.0}, 1)] * 2

    with StreamReader(table_name, endpoint_url=endpoint_url, region=REGION) as reader:
        aggregate_stream(table_name, endpoint_url=endpoint_url, region=REGION, reader=reader, windows="monthly")
        acquire(endpoint_url, table_name, "k", 3)
        only_new = aggregate_stream(table_name, endpoint_url=endpoint_url, region=REGION, reader=reader, windows="monthly")
        assert only_new.usage_records == 1 and only_new.records < again.records
    monthly = {k: v for k, v in snapshots(dynamodb, table_name).items() if k[2] == "monthly"}
    assert list(monthly.values()) == [({"rpm": 5.0}, 2)]


def test_settings_and_missing_tables_are_clear_errors(endpoint_url, table_name):
    with pytest.raises(ValidationError) as raised:
        aggregate_stream(table_name, endpoint_url=endpoint_url, windows="weekly")
    assert raised.value.field == "snapshot_windows"
    with pytest.raises(ValidationError) as raised:
        aggregate_stream(table_name, endpoint_url=endpoint_url, retention_days=0)
    assert raised.value.field == "snapshot_retention_days"
    with pytest.raises(StorageError, match="no_such_table has no stream"):
        StreamReader("no_such_table", endpoint_url=endpoint_url)


def test_lambda_environment_is_restored(endpoint_url, monkeypatch):
    monkeypatch.setenv("SNAPSHOT_WINDOWS", "daily")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with lambda_environment(endpoint_url, windows="monthly", retention_days=7):
        assert os.environ["AWS_ENDPOINT_URL"] == endpoint_url
        assert (os.environ["SNAPSHOT_WINDOWS"], os.environ["SNAPSHOT_RETENTION_DAYS"]) == ("monthly", "7")
    assert os.environ["SNAPSHOT_WINDOWS"] == "daily" and "AWS_ENDPOINT_URL" not in os.environ


def test_follow_stream_aggregates_as_traffic_arrives(endpoint_url, table_name, dynamodb):
    acquire(endpoint_url, table_name, "early", 1)  # before the follower starts: counted too
    stop = threading.Event()
    runs: list[AggregationRun] = []
    follower = threading.Thread(
        target=follow_stream,
        kwargs=dict(table_name=table_name, endpoint_url=endpoint_url, region=REGION, stop=stop, interval=0.05, on_run=runs.append),
    )
    follower.start()
    try:
        acquire(endpoint_url, table_name, "late", 4)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            daily = sorted((k[0], v) for k, v in snapshots(dynamodb, table_name).items() if k[2] == "daily")
            if daily == [("early", ({"rpm": 1.0}, 1)), ("late", ({"rpm": 4.0}, 1))]:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the follower did not aggregate both entities: {snapshots(dynamodb, table_name)}")
    finally:
        stop.set()
        follower.join(10)
    assert not follower.is_alive()
    assert runs and not any(run.failures for run in runs)
