"""The aggregator Lambda on records read from the embedded server's real DynamoDB Stream, invoked with
the event Lambda would build: usage equals what was consumed, per window, delivered once or many times."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
from botocore.exceptions import ClientError

from aggregator import TABLE_OPERATIONS
from aggregator.handler import handler, process_event
from aggregator.snapshots import Settings
from aggregator.usage_records import parse_record
from usage_stream import REGION, fresh_table, retarget, set_times, snapshots, stream_event, subset, usage_items
from zae_limiter import Limit, SyncRateLimiter
from zae_limiter.core import schema
from zae_limiter.transport.clients import make_client
from zae_limiter.local_stream import StreamReader

LIMITS = [Limit.per_minute("rpm", 100), Limit.per_minute("tpm", 10_000)]
UTC = timezone.utc


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch, endpoint_url: str) -> None:
    """The environment the handler sees on Lambda, pointed at the embedded server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("SNAPSHOT_WINDOWS", raising=False)
    monkeypatch.delenv("SNAPSHOT_RETENTION_DAYS", raising=False)


@pytest.fixture
def sync(endpoint_url: str, table_name: str) -> Iterator[SyncRateLimiter]:
    with SyncRateLimiter(table_name=table_name, region=REGION, endpoint_url=endpoint_url) as limiter:
        yield limiter


def bucket_counters(dynamodb: Any, table_name: str, entity_id: str, resource: str) -> tuple[dict[str, float], int]:
    item = dynamodb.get_item(TableName=table_name, Key=schema.bucket_key(entity_id, resource), ConsistentRead=True)["Item"]
    return {k: v / 1000 for k, v in schema.bucket_counters(item).items()}, schema.bucket_acquires(item)


def consume_with_cascade(sync: SyncRateLimiter) -> None:
    """Consume, adjust up and down, and a refund, on a child that cascades to its parent."""
    sync.create_entity("org")
    sync.create_entity("key", parent_id="org", cascade=True)
    with sync.acquire("key", "gpt-4", LIMITS, consume={"rpm": 1, "tpm": 100}) as lease:
        lease.adjust(tpm=42.5)
    with pytest.raises(TimeoutError):
        with sync.acquire("key", "gpt-4", LIMITS, consume={"rpm": 1, "tpm": 200}):
            raise TimeoutError("refunded")
    with sync.acquire("key", "gpt-4", LIMITS, consume={"rpm": 1, "tpm": 50}) as lease:
        lease.adjust(tpm=-30)
    with sync.acquire("solo", "gpt-4", LIMITS, consume={"rpm": 2, "tpm": 7}):
        pass


def totals(written: dict, entity_id: str, window: str) -> tuple[dict[str, float], int]:
    """Sum of an entity's snapshots of one window size over all window starts."""
    counters: dict[str, float] = {}
    events = 0
    for (entity, _, w, _), (values, n) in written.items():
        if (entity, w) == (entity_id, window):
            events += n
            for name, value in values.items():
                counters[name] = counters.get(name, 0) + value
    return counters, events


def test_snapshots_hold_exactly_what_was_consumed(lambda_env, sync, endpoint_url, table_name, dynamodb):
    consume_with_cascade(sync)
    event = stream_event(endpoint_url, table_name)
    assert handler(event, None) == {"batchItemFailures": []}

    written = snapshots(dynamodb, table_name)
    # 1 + 1 + 1 - 1 (refund) requests; 100 + 42.5 + 200 - 200 + 50 - 30 tokens; 3 admitted acquires.
    key_usage = ({"rpm": 2.0, "tpm": 162.5}, 3)
    for window in ("hourly", "daily"):
        assert totals(written, "key", window) == key_usage
        assert totals(written, "org", window) == key_usage  # the cascade parent's own bucket records
        assert totals(written, "solo", window) == ({"rpm": 2.0, "tpm": 7.0}, 1)
    # The windows are those of the records' own timestamps (real ones here).
    moments = [datetime.fromtimestamp(r["dynamodb"]["ApproximateCreationDateTime"], UTC) for r in event["Records"]]
    assert {(k[2], k[3]) for k in written} <= {
        (w, schema.format_window_start(schema.window_start_of(m, w))) for m in moments for w in ("hourly", "daily")
    }
    # The invariant behind it: snapshots sum to the buckets' consumed counters.
    for entity in ("key", "org", "solo"):
        assert totals(written, entity, "daily") == bucket_counters(dynamodb, table_name, entity, "gpt-4")


def test_snapshot_items_carry_the_index_keys_and_ttl(lambda_env, sync, endpoint_url, table_name, dynamodb, monkeypatch):
    monkeypatch.setenv("SNAPSHOT_RETENTION_DAYS", "7")
    with sync.acquire("k", "gpt-4", LIMITS, consume={"rpm": 1}):
        pass
    moment = datetime(2026, 5, 17, 13, 45, tzinfo=UTC)
    assert handler(set_times(stream_event(endpoint_url, table_name), [moment]), None) == {"batchItemFailures": []}
    items = {item["window"]["S"]: item for item in usage_items(dynamodb, table_name)}
    assert set(items) == {"hourly", "daily"}
    hourly = items["hourly"]
    assert hourly["PK"] == {"S": "ENTITY#k"}
    assert hourly["SK"] == {"S": schema.usage_sk("gpt-4", "hourly", "2026-05-17T13:00:00Z")}
    assert hourly["GSI2PK"] == {"S": schema.resource_key("gpt-4")}
    assert hourly["GSI2SK"] == {"S": schema.usage_index_sk("hourly", "2026-05-17T13:00:00Z", "k")}
    # Retention counts from the end of the window.
    assert int(hourly["ttl"]["N"]) == int(datetime(2026, 5, 24, 14, tzinfo=UTC).timestamp())
    assert int(items["daily"]["ttl"]["N"]) == int(datetime(2026, 5, 25, tzinfo=UTC).timestamp())


def test_records_that_are_not_buckets_are_ignored_including_our_own_snapshots(
    lambda_env, sync, endpoint_url, table_name, dynamodb
):
    sync.create_entity("k")
    sync.set_limits("k", LIMITS)
    with sync.acquire("k", "gpt-4", consume={"rpm": 1}):
        pass
    with StreamReader(table_name, endpoint_url=endpoint_url, region=REGION) as reader:
        first = stream_event(endpoint_url, table_name, reader)
        assert handler(first, None) == {"batchItemFailures": []}
        before = snapshots(dynamodb, table_name)
        # The snapshot writes came back on the stream: the next batch holds only those.
        echo = stream_event(endpoint_url, table_name, reader)
    assert echo["Records"] and all(r["dynamodb"]["Keys"]["SK"]["S"].startswith("#USAGE#") for r in echo["Records"])
    outcome = process_event(echo, Settings(), lambda region: make_client("dynamodb", region, endpoint_url))
    assert (outcome.usage_records, outcome.snapshots_written, outcome.response()) == (0, 0, {"batchItemFailures": []})
    assert snapshots(dynamodb, table_name) == before


def test_deleting_an_entity_is_not_negative_usage(lambda_env, sync, endpoint_url, table_name, dynamodb):
    sync.create_entity("k")
    with sync.acquire("k", "gpt-4", LIMITS, consume={"rpm": 3}):
        pass
    sync.delete_entity("k")  # REMOVE records for the bucket, the record and its limits
    event = stream_event(endpoint_url, table_name)
    assert any(r["eventName"] == "REMOVE" and "#BUCKET#" in r["dynamodb"]["Keys"]["SK"]["S"] for r in event["Records"])
    assert handler(event, None) == {"batchItemFailures": []}
    assert list(snapshots(dynamodb, table_name).values()) == [({"rpm": 3.0}, 1)] * 2  # hourly, daily


# -- delivered more than once ----------------------------------------------------------------------
def many_records(sync: SyncRateLimiter) -> None:
    """Enough records of several items that halves and checkpoints split snapshots in the middle."""
    sync.create_entity("org")
    sync.create_entity("key", parent_id="org", cascade=True)
    for i in range(6):
        with sync.acquire("key", "gpt-4", LIMITS, consume={"rpm": 1, "tpm": 10 * (i + 1)}) as lease:
            lease.adjust(tpm=i)
        with sync.acquire("other", "claude", LIMITS, consume={"tpm": 3}):
            pass


def deliver(event: dict[str, Any], schedule: list[tuple[int, int | None]]) -> None:
    for start, stop in schedule:
        assert handler(subset(event, start, stop), None) == {"batchItemFailures": []}


def lambda_schedules(n: int, rng: random.Random, count: int) -> list[list[tuple[int, int]]]:
    """Delivery schedules Lambda can produce: each delivery starts at or after the checkpoint (the start
    of the previous one) and at or before where the deliveries so far ended."""
    schedules = []
    for _ in range(count):
        schedule, checkpoint, done = [], 0, 0
        while done < n:
            start = rng.randint(checkpoint, done)
            stop = rng.randint(done + 1, n)
            schedule.append((start, stop))
            checkpoint, done = start, max(done, stop)
        schedules.append(schedule)
    return schedules


def test_redelivered_batches_leave_the_same_snapshots(lambda_env, sync, endpoint_url, table_name, dynamodb):
    many_records(sync)
    event = stream_event(endpoint_url, table_name)
    n = len(event["Records"])
    assert n > 30
    reference = fresh_table(endpoint_url)
    deliver(retarget(event, reference), [(0, None)])
    expected = snapshots(dynamodb, reference)
    assert totals(expected, "key", "daily") == ({"rpm": 6.0, "tpm": 225.0}, 6)

    schedules: dict[str, list[tuple[int, int | None]]] = {
        "twice": [(0, None), (0, None)],
        # Bisection: the first half, the whole batch again, then each half again.
        "bisected": [(0, n // 2), (0, None), (n // 2, None), (0, n // 2), (n // 2, None)],
        # Retries from checkpoints in the middle of snapshots' runs of records.
        "checkpoints": [(0, 7), (5, 19), (3, 30), (29, None), (0, None)],
    }
    for i, schedule in enumerate(lambda_schedules(n, random.Random(5), 2)):
        schedules[f"random {i}"] = list(schedule)
    for name, schedule in schedules.items():
        replayed = fresh_table(endpoint_url)
        deliver(retarget(event, replayed), schedule)
        assert snapshots(dynamodb, replayed) == expected, (name, schedule)


class FlakyClient:
    """A DynamoDB client whose UpdateItem fails for chosen snapshots (like throttling after the SDK's
    retries), and that can behave like an emulator that returns no item on a failed condition."""

    def __init__(self, client: Any, fail_sk_containing: str | None = None, strip_old_item: bool = False) -> None:
        self.client = client
        self.fail_sk_containing = fail_sk_containing
        self.strip_old_item = strip_old_item
        self.operations: list[str] = []
        client.meta.events.register("before-call.dynamodb", lambda model, **_: self.operations.append(model.name))

    def update_item(self, **request: Any) -> Any:
        if self.fail_sk_containing and self.fail_sk_containing in request["Key"]["SK"]["S"]:
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
            raise ClientError(error, "UpdateItem")
        try:
            return self.client.update_item(**request)
        except ClientError as error:
            if self.strip_old_item:
                error.response.pop("Item", None)
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_a_failed_write_is_reported_from_its_first_record_and_redelivery_completes_it(
    lambda_env, sync, endpoint_url, table_name, dynamodb
):
    many_records(sync)
    event = stream_event(endpoint_url, table_name)
    reference = fresh_table(endpoint_url)
    deliver(retarget(event, reference), [(0, None)])
    expected = snapshots(dynamodb, reference)

    target = fresh_table(endpoint_url)
    replay = retarget(event, target)
    flaky = FlakyClient(make_client("dynamodb", REGION, endpoint_url), fail_sk_containing="#daily#")
    response = process_event(replay, Settings(), lambda region: flaky).response()
    # The lowest failure is the first record with usage (it is in a daily snapshot): where Lambda resumes.
    first_bucket = next(i for i, r in enumerate(replay["Records"]) if parse_record(r) is not None)
    assert response["batchItemFailures"][0] == {"itemIdentifier": replay["Records"][first_bucket]["dynamodb"]["SequenceNumber"]}
    assert not any(key[2] == "daily" for key in snapshots(dynamodb, target))
    assert {k: v for k, v in snapshots(dynamodb, target).items() if k[2] == "hourly"} == {
        k: v for k, v in expected.items() if k[2] == "hourly"
    }
    # Lambda delivers again from the checkpoint; the hourly snapshots skip what they hold.
    deliver(replay, [(first_bucket, None)])
    assert snapshots(dynamodb, target) == expected


def test_without_the_old_item_on_a_failed_condition_the_snapshot_is_read(lambda_env, sync, endpoint_url, table_name, dynamodb):
    many_records(sync)
    event = stream_event(endpoint_url, table_name)
    reference, target = fresh_table(endpoint_url), fresh_table(endpoint_url)
    deliver(retarget(event, reference), [(0, None)])
    client = FlakyClient(make_client("dynamodb", REGION, endpoint_url), strip_old_item=True)
    replay = retarget(event, target)
    for start in (0, 0, 11):
        assert process_event(subset(replay, start), Settings(), lambda region: client).response() == {"batchItemFailures": []}
    assert snapshots(dynamodb, target) == snapshots(dynamodb, reference)
    assert "GetItem" in client.operations
    # The IAM manifest covers every action the handler performs.
    assert set(client.operations) <= set(TABLE_OPERATIONS)


# -- windows -----------------------------------------------------------------------------------------
def four_acquires(sync: SyncRateLimiter) -> None:
    for tokens in (1, 2, 4, 8):
        with sync.acquire("k", "gpt-4", LIMITS, consume={"tpm": tokens}):
            pass


def test_usage_lands_in_the_window_of_its_record_across_hour_day_and_month(
    lambda_env, sync, endpoint_url, table_name, dynamodb, monkeypatch
):
    monkeypatch.setenv("SNAPSHOT_WINDOWS", "hourly,daily,monthly")
    four_acquires(sync)
    midnight = datetime(2026, 3, 1, tzinfo=UTC)
    times = [midnight + timedelta(seconds=s) for s in (-2, -1, 0, 1)]
    assert handler(set_times(stream_event(endpoint_url, table_name), times), None) == {"batchItemFailures": []}
    before, after = ({"tpm": 3.0}, 2), ({"tpm": 12.0}, 2)
    assert snapshots(dynamodb, table_name) == {
        ("k", "gpt-4", "hourly", "2026-02-28T23:00:00Z"): before,
        ("k", "gpt-4", "hourly", "2026-03-01T00:00:00Z"): after,
        ("k", "gpt-4", "daily", "2026-02-28T00:00:00Z"): before,
        ("k", "gpt-4", "daily", "2026-03-01T00:00:00Z"): after,
        ("k", "gpt-4", "monthly", "2026-02-01T00:00:00Z"): before,
        ("k", "gpt-4", "monthly", "2026-03-01T00:00:00Z"): after,
    }


def test_monthly_only(lambda_env, sync, endpoint_url, table_name, dynamodb, monkeypatch):
    monkeypatch.setenv("SNAPSHOT_WINDOWS", "monthly")
    four_acquires(sync)
    times = [datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)] * 3 + [datetime(2027, 1, 1, tzinfo=UTC)]
    assert handler(set_times(stream_event(endpoint_url, table_name), times), None) == {"batchItemFailures": []}
    assert snapshots(dynamodb, table_name) == {
        ("k", "gpt-4", "monthly", "2026-12-01T00:00:00Z"): ({"tpm": 7.0}, 3),
        ("k", "gpt-4", "monthly", "2027-01-01T00:00:00Z"): ({"tpm": 8.0}, 1),
    }


# -- poison records ---------------------------------------------------------------------------------
NOON = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)


def test_a_poison_record_is_reported_and_nothing_else_is_lost(lambda_env, sync, endpoint_url, table_name, dynamodb, caplog):
    four_acquires(sync)
    event = set_times(stream_event(endpoint_url, table_name), [NOON] * 4)
    carrying = [i for i, r in enumerate(event["Records"]) if parse_record(r) is not None]
    poison_index = carrying[2]  # the acquire of 4 tokens
    poison = event["Records"][poison_index]
    poison["dynamodb"]["NewImage"]["c_tpm"] = {"N": "7x"}
    sequence = poison["dynamodb"]["SequenceNumber"]

    assert handler(event, None) == {"batchItemFailures": [{"itemIdentifier": sequence}]}
    assert f"stream record {sequence}" in caplog.text and "c_tpm" in caplog.text  # logged, with the cause
    applied = {"hourly": ({"tpm": 11.0}, 3), "daily": ({"tpm": 11.0}, 3)}  # 1 + 2 + 8: all but the poison
    assert {k[2]: v for k, v in snapshots(dynamodb, table_name).items()} == applied
    # Lambda retries from the poison record: it fails again, the records after it are not counted twice.
    assert handler(subset(event, poison_index), None) == {"batchItemFailures": [{"itemIdentifier": sequence}]}
    assert {k[2]: v for k, v in snapshots(dynamodb, table_name).items()} == applied


def test_a_record_without_a_sequence_number_fails_the_batch_after_applying_the_rest(
    lambda_env, sync, endpoint_url, table_name, dynamodb
):
    from aggregator.handler import MalformedBatch

    four_acquires(sync)
    event = set_times(stream_event(endpoint_url, table_name), [NOON] * 4)
    event["Records"].insert(1, {"eventName": "MODIFY", "dynamodb": {}})
    with pytest.raises(MalformedBatch, match="without a SequenceNumber"):
        handler(event, None)
    assert list(snapshots(dynamodb, table_name).values()) == [({"tpm": 15.0}, 4)] * 2


def test_bad_settings_fail_every_invocation_clearly(lambda_env, monkeypatch):
    from zae_limiter import ValidationError

    monkeypatch.setenv("SNAPSHOT_WINDOWS", "hourly,weekly")
    with pytest.raises(ValidationError) as raised:
        handler({"Records": []}, None)
    assert raised.value.field == "SNAPSHOT_WINDOWS" and "weekly" in str(raised.value)
    monkeypatch.setenv("SNAPSHOT_WINDOWS", "daily")
    monkeypatch.setenv("SNAPSHOT_RETENTION_DAYS", "ninety")
    with pytest.raises(ValidationError) as raised:
        handler({"Records": []}, None)
    assert raised.value.field == "SNAPSHOT_RETENTION_DAYS"
