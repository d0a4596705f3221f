"""The aggregator's pure parts: stream record -> usage delta, sequence keys, merging, the write request,
settings. No server."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from aggregator.snapshots import Settings, merge, pending_after, stored_sequence, update_request
from aggregator.usage_records import PoisonRecord, parse_record, sequence_key, stream_source
from zae_limiter import ValidationError
from zae_limiter.core import schema

ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/rate_limits/stream/2026-01-01T00:00:00.000"
WHEN = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def record(seq: str = "100000000000000000001", event: str = "MODIFY", new: dict | None = None, old: dict | None = None,
           sk: str = "#BUCKET#gpt-4", when: object = WHEN) -> dict:
    keys = {"PK": {"S": "ENTITY#k"}, "SK": {"S": sk}}
    stream: dict = {"Keys": keys, "SequenceNumber": seq, "ApproximateCreationDateTime": when, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if new is not None:
        stream["NewImage"] = {**keys, **new}
    if old is not None:
        stream["OldImage"] = {**keys, **old}
    return {"eventID": "e", "eventName": event, "eventSource": "aws:dynamodb", "awsRegion": "eu-west-1",
            "dynamodb": stream, "eventSourceARN": ARN}


def counters(**values: int) -> dict:
    return {(k if k == "n" else f"c_{k}"): {"N": str(v)} for k, v in values.items()}


def test_a_modify_yields_the_counter_differences_including_refunds():
    delta = parse_record(record(new=counters(rpm=2000, tpm=50_000, n=3), old=counters(rpm=3000, tpm=20_000, n=3)))
    assert delta is not None
    assert (delta.region, delta.table, delta.entity_id, delta.resource) == ("eu-west-1", "rate_limits", "k", "gpt-4")
    assert delta.counters == {"rpm": -1000, "tpm": 30_000} and delta.events == 0
    assert delta.at == datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_an_insert_counts_from_zero_and_a_new_limit_counts_from_zero():
    assert parse_record(record(event="INSERT", new=counters(rpm=1000, n=1))).counters == {"rpm": 1000}
    delta = parse_record(record(new=counters(rpm=2000, tpm=700, n=2), old=counters(rpm=1000, n=1)))
    assert (delta.counters, delta.events) == ({"rpm": 1000, "tpm": 700}, 1)


@pytest.mark.parametrize(
    "rec",
    [
        record(event="REMOVE", old=counters(rpm=5000, n=5)),  # deleting consumes nothing
        record(sk="#META", new={"entity_id": {"S": "k"}}, event="INSERT"),
        record(sk="#LIMIT#gpt-4", new={"limits": {"M": {}}}, event="INSERT"),
        record(sk="#USAGE#gpt-4#hourly#2026-01-01T00:00:00Z", new=counters(rpm=5), event="INSERT"),
        record(event="INSERT", new={}),  # moto's keys-only INSERT before an item's first update
        record(new=counters(rpm=1000, n=1), old=counters(rpm=1000, n=1)),  # nothing moved
    ],
)
def test_records_without_usage_are_none(rec):
    assert parse_record(rec) is None


@pytest.mark.parametrize(
    "rec, reason",
    [
        (record(new=counters(rpm=1, n=1) | {"c_tpm": {"N": "1.5"}}, old=counters(n=0)), "NewImage.c_tpm must be an integer"),
        (record(new=counters(rpm=1) | {"n": {"S": "one"}}, old=counters(n=0)), "NewImage.n must be an integer"),
        (record(new=counters(rpm=1), old={"c_rpm": {"S": "x"}}), "OldImage.c_rpm"),
        (record(new=counters(rpm=1)), "MODIFY without OldImage"),
        (record(event="INSERT"), "INSERT without NewImage"),
        (record(event="UPSERT", new=counters(rpm=1)), "unknown eventName"),
        (record(new=counters(rpm=1), old={}, when="2026-01-01"), "epoch seconds"),
        (record(new=counters(rpm=1), old={}, when=None), "epoch seconds"),
        ({**record(new=counters(rpm=1), old={}), "eventSourceARN": "arn:aws:kinesis:x"}, "not a DynamoDB stream ARN"),
        ({**record(), "dynamodb": {"SequenceNumber": "1" * 21, "Keys": {"PK": {"N": "1"}}}}, "Keys"),
    ],
)
def test_poison_records_name_the_record_and_the_cause(rec, reason):
    with pytest.raises(PoisonRecord) as raised:
        parse_record(rec)
    assert raised.value.sequence_number == rec["dynamodb"]["SequenceNumber"]
    assert reason in str(raised.value)


def test_a_record_without_a_sequence_number_cannot_be_reported():
    with pytest.raises(PoisonRecord) as raised:
        parse_record({"eventName": "MODIFY", "dynamodb": {"SequenceNumber": 12}})
    assert raised.value.sequence_number is None


def test_sequence_keys_sort_like_the_numbers_even_beyond_38_digits():
    rng = random.Random(1)
    numbers = [rng.randrange(10 ** rng.randint(1, 45)) for _ in range(2000)] + [10**39, 10**39 + 1, 10**40 - 1]
    by_key = sorted(numbers, key=lambda x: sequence_key(str(x)))
    assert by_key == sorted(numbers)
    assert sequence_key("000123") == sequence_key("123")
    for bad in ("", "12a", "-1", "1" * 100, 12):
        with pytest.raises(ValueError):
            sequence_key(bad)  # type: ignore[arg-type]


def test_stream_source():
    assert stream_source(ARN) == ("eu-west-1", "rate_limits")
    assert stream_source(ARN.replace("arn:aws:", "arn:aws-cn:")) == ("eu-west-1", "rate_limits")
    with pytest.raises(ValueError):
        stream_source("arn:aws:dynamodb:eu-west-1:123456789012:table/rate_limits")


def deltas(*specs: tuple[int, float, int]):
    """(sequence, epoch seconds, tpm thousandths) -> deltas of one bucket item."""
    return [
        parse_record(record(seq=str(seq), when=when, event="INSERT", new=counters(tpm=tpm, n=1)))
        for seq, when, tpm in specs
    ]


def test_merge_makes_one_change_per_snapshot_in_stream_order():
    hour = 3600.0
    changes = merge(deltas((30, WHEN + 10, 3), (10, WHEN + 5, 1), (40, WHEN + hour, 4)), Settings(("hourly", "daily")))
    by_window = {(c.snapshot.window, c.snapshot.window_start.hour): c for c in changes}
    assert set(by_window) == {("hourly", 0), ("hourly", 1), ("daily", 0)}
    assert [d.sequence_number for d in by_window[("hourly", 0)].deltas] == ["10", "30"]
    assert by_window[("daily", 0)].counters == {"tpm": 8} and by_window[("daily", 0)].events == 3


def test_pending_after_keeps_only_records_after_the_stored_mark():
    (change,) = merge(deltas((5, WHEN, 1), (9, WHEN, 2), (12, WHEN, 4)), Settings(("daily",)))
    assert pending_after(change, None) is change
    assert [d.sequence_number for d in pending_after(change, sequence_key("9")).deltas] == ["12"]
    assert pending_after(change, sequence_key("12")) is None
    assert pending_after(change, sequence_key("4")) == change


def test_the_update_adds_sums_sets_the_mark_and_is_conditional_on_it():
    (change,) = merge(deltas((5, WHEN, 1000), (9, WHEN, -250)), Settings(("daily",), retention_days=30))
    request = update_request(change, Settings(("daily",), retention_days=30))
    assert request["TableName"] == "rate_limits"
    assert request["Key"] == schema.usage_key("k", "gpt-4", "daily", datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert request["ConditionExpression"] == "attribute_not_exists(#seq) OR #seq < :first"
    values = request["ExpressionAttributeValues"]
    assert values[":first"] == {"S": sequence_key("5")} and values[":last"] == {"S": sequence_key("9")}
    assert {"N": "750"} in values.values() and values[":n"] == {"N": "2"}
    assert values[":ttl"] == {"N": str(int(WHEN) + 86400 + 30 * 86400)}
    assert request["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
    assert stored_sequence({"seq": {"S": "x"}}) == "x" and stored_sequence(None) is None


def test_settings_from_the_environment():
    assert Settings.from_env({}) == Settings(("hourly", "daily"), 90)
    assert Settings.from_env({"SNAPSHOT_WINDOWS": " monthly , hourly", "SNAPSHOT_RETENTION_DAYS": "7"}) == Settings(
        ("monthly", "hourly"), 7
    )
    for env, field in [
        ({"SNAPSHOT_WINDOWS": "weekly"}, "SNAPSHOT_WINDOWS"),
        ({"SNAPSHOT_WINDOWS": ""}, "SNAPSHOT_WINDOWS"),
        ({"SNAPSHOT_WINDOWS": "hourly,hourly"}, "SNAPSHOT_WINDOWS"),
        ({"SNAPSHOT_RETENTION_DAYS": "0"}, "SNAPSHOT_RETENTION_DAYS"),
        ({"SNAPSHOT_RETENTION_DAYS": "3651"}, "SNAPSHOT_RETENTION_DAYS"),
        ({"SNAPSHOT_RETENTION_DAYS": "1.5"}, "SNAPSHOT_RETENTION_DAYS"),
    ]:
        with pytest.raises(ValidationError) as raised:
            Settings.from_env(env)
        assert raised.value.field == field


def test_windows_are_calendar_aligned_in_utc():
    from datetime import timedelta

    moment = datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5)))  # 2027-01-01 04:59:59Z
    assert schema.window_start_of(moment, "hourly") == datetime(2027, 1, 1, 4, tzinfo=timezone.utc)
    assert schema.window_start_of(moment, "daily") == datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert schema.window_start_of(moment, "monthly") == datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert schema.window_end(datetime(2026, 12, 1, tzinfo=timezone.utc), "monthly") == datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert schema.window_end(datetime(2026, 2, 1, tzinfo=timezone.utc), "monthly") == datetime(2026, 3, 1, tzinfo=timezone.utc)
    with pytest.raises(ValidationError):
        schema.window_start_of(moment, "weekly")
