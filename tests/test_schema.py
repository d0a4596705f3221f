"""The schema module: keys, the table definition, and item codecs including corrupt items."""

from datetime import datetime, timezone

import pytest

from zae_limiter import Entity, Limit, StorageError
from zae_limiter.core import schema


def test_seed_key_patterns_are_kept():
    assert schema.meta_key("k1") == {"PK": {"S": "ENTITY#k1"}, "SK": {"S": "#META"}}
    assert schema.bucket_key("k1", "gpt-4")["SK"] == {"S": "#BUCKET#gpt-4"}
    assert schema.entity_limits_key("k1", "gpt-4")["SK"] == {"S": "#LIMIT#gpt-4"}
    assert schema.parent_key("p") == "PARENT#p"
    assert schema.resource_key("gpt-4") == "RESOURCE#gpt-4"
    assert schema.entity_id_of("ENTITY#k1") == "k1"
    assert schema.bucket_resource_of("#BUCKET#gpt-4") == "gpt-4"
    assert schema.bucket_resource_of("#META") is None


def test_table_request_has_streams_indexes_and_encryption():
    request = schema.create_table_request("t")
    assert request["BillingMode"] == "PAY_PER_REQUEST"
    assert request["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert [i["IndexName"] for i in request["GlobalSecondaryIndexes"]] == ["GSI1", "GSI2"]
    assert {a["AttributeName"] for a in request["AttributeDefinitions"]} == {"PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK"}


def test_entity_codec_round_trip_and_parent_index():
    entity = Entity("k", "Key", "p", True, {"team": "x"}, datetime(2026, 1, 1, tzinfo=timezone.utc))
    item = schema.entity_item(entity)
    assert item["GSI1PK"] == {"S": "PARENT#p"}
    assert schema.entity_from_item(item) == entity


def test_limits_codec_round_trip():
    limits = [Limit.per_minute("rpm", 100), Limit.per_minute("tpm", 10_000, burst=50_000)]
    item = schema.limits_item(schema.system_defaults_key(), limits)
    assert schema.limits_from_item(item) == sorted(limits, key=lambda l: l.name)


def test_bucket_items_carry_no_index_keys():
    # Bucket writes are built by acquire.bucket_update: their attributes are tats, counters, `n` and the
    # configuration's version only.
    from zae_limiter.core.acquire import Level, bucket_update

    request = bucket_update("t", Level("k", (Limit.per_minute("rpm", 10),)), "r", {"rpm": 1000}, 10**18, {})
    written = set(request["ExpressionAttributeNames"].values())
    assert written == {"b_rpm", "c_rpm", "n", "cv"}
    assert not written & {"GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK"}


@pytest.mark.parametrize(
    "item",
    [
        {"PK": {"S": "SYSTEM#"}, "SK": {"S": "#DEFAULTS"}, "limits": {"M": {"rpm": {"M": {"capacity": {"N": "-1"}}}}}},
        {"PK": {"S": "SYSTEM#"}, "SK": {"S": "#DEFAULTS"}, "limits": {"S": "oops"}},
    ],
)
def test_corrupt_limits_item_names_its_key(item):
    with pytest.raises(StorageError) as raised:
        schema.limits_from_item(item)
    assert "SYSTEM#/#DEFAULTS" in str(raised.value)


SNAPSHOT = {
    **schema.snapshot_identity("k", "api", "hourly", datetime(2026, 1, 1, tzinfo=timezone.utc)),
    "c_rpm": {"N": "1000"}, "n": {"N": "1"},
}
LIMITS = schema.limits_item(schema.system_defaults_key(), [Limit.per_minute("rpm", 10)])
ENTITY = schema.entity_item(Entity("k", "Key", "p", True, {"team": "x"}, datetime(2026, 1, 1, tzinfo=timezone.utc)))
BUCKET = {**schema.bucket_key("k", "api"), "b_rpm": {"N": "5"}, "c_rpm": {"N": "1000"}, "n": {"N": "1"}}


def changed(item: dict, **attrs) -> dict:
    return {**item, **attrs}


def without(item: dict, attr: str) -> dict:
    return {k: v for k, v in item.items() if k != attr}


# Every attribute each codec reads, stored with a wrong type (or missing where it is required): the
# error names the item and the attribute. A wrong type is never read as a default.
CORRUPT = [
    (schema.entity_from_item, changed(ENTITY, cascade={"S": "true"}), "cascade"),
    (schema.entity_from_item, changed(ENTITY, cascade={"N": "1"}), "cascade"),
    (schema.entity_from_item, changed(ENTITY, cascade={"BOOL": "true"}), "cascade"),
    (schema.entity_from_item, changed(ENTITY, entity_id={"S": 5}), "entity_id"),
    (schema.entity_from_item, without(ENTITY, "entity_id"), "entity_id"),
    (schema.entity_from_item, changed(ENTITY, name={"N": "1"}), "name"),
    (schema.entity_from_item, changed(ENTITY, parent_id={"NULL": True}), "parent_id"),
    (schema.entity_from_item, changed(ENTITY, metadata={"L": []}), "metadata"),
    (schema.entity_from_item, changed(ENTITY, metadata={"M": {"team": {"BOOL": True}}}), "metadata.team"),
    (schema.entity_from_item, changed(ENTITY, created_at={"N": "1767225600"}), "created_at"),
    (schema.entity_from_item, changed(ENTITY, created_at={"S": "soon"}), "created_at"),
    (schema.limits_from_item, changed(LIMITS, limits={"L": []}), "limits"),
    (schema.limits_from_item, changed(LIMITS, limits={"M": {"rpm": {"M": {**LIMITS["limits"]["M"]["rpm"]["M"], "soft": {"S": "true"}}}}}),
     "limits.rpm.soft"),
    (schema.limits_from_item, changed(LIMITS, limits={"M": {"rpm": {"M": {**LIMITS["limits"]["M"]["rpm"]["M"], "every": {"N": "1"}}}}}),
     "limits.rpm.every"),
    (schema.version_of, changed(LIMITS, cv={"S": "3"}), "cv"),
    (schema.version_of, changed(BUCKET, cv={"N": "3.5"}), "cv"),
    (schema.disabled_of, changed(LIMITS, disabled={"S": "true"}), "disabled"),
    (schema.disabled_of, changed(LIMITS, disabled={"N": "1"}), "disabled"),
    (schema.schedule_from_item, changed(LIMITS, schedule={"M": {}}), "schedule"),
    (schema.schedule_from_item, changed(LIMITS, schedule={"L": [{"S": "0 9 * * *"}]}), "schedule[0]"),
    (schema.schedule_from_item, changed(LIMITS, schedule={"L": [{"M": {"cron": {"N": "9"}, "limits": LIMITS["limits"]}}]}),
     "schedule[0].cron"),
    (schema.schedule_from_item, changed(LIMITS, schedule={"L": [{"M": {"cron": {"S": "0 9 * * *"}}}]}), "schedule[0].limits"),
    (schema.schedule_from_item, changed(LIMITS, schedule={"L": [{"M": {"cron": {"S": "0 9 * * *"}, "limits": {"M": {
        "rpm": {"M": {"capacity": {"S": "1"}}}}}}}]}), "schedule[0].limits.rpm.capacity"),
    (schema.schedule_from_item, changed(LIMITS, schedule={"L": []}, schedule_since={"S": "0"}), "schedule_since"),
    (schema.limits_from_item, changed(LIMITS, limits={"M": {"rpm": {"S": "10/min"}}}), "limits.rpm"),
    (schema.limits_from_item, changed(LIMITS, limits={"M": {"rpm": {"M": {**LIMITS["limits"]["M"]["rpm"]["M"], "capacity": {"S": "10"}}}}}),
     "limits.rpm.capacity"),
    (schema.limits_from_item, changed(LIMITS, limits={"M": {"rpm": {"M": {**LIMITS["limits"]["M"]["rpm"]["M"], "refill_amount": {"N": "x"}}}}}),
     "limits.rpm.refill_amount"),
    (schema.limits_from_item, changed(LIMITS, limits={"M": {"rpm": {"M": {"capacity": {"N": "1"}, "refill_amount": {"N": "1"}}}}}),
     "limits.rpm.refill_period_seconds"),
    (schema.bucket_tats, changed(BUCKET, b_rpm={"S": "5"}), "b_rpm"),
    (schema.bucket_tats, changed(BUCKET, b_rpm={"N": "1.5"}), "b_rpm"),
    (schema.bucket_counters, changed(BUCKET, c_rpm={"N": "lots"}), "c_rpm"),
    (schema.bucket_acquires, changed(BUCKET, n={"BOOL": True}), "n"),
    (schema.snapshot_from_item, changed(SNAPSHOT, c_rpm={"S": "1000"}), "c_rpm"),
    (schema.snapshot_from_item, changed(SNAPSHOT, n={"N": "1.5"}), "n"),
    (schema.snapshot_from_item, changed(SNAPSHOT, entity_id={"N": "1"}), "entity_id"),
    (schema.snapshot_from_item, changed(SNAPSHOT, resource={"S": "a#b"}), "resource"),
    (schema.snapshot_from_item, changed(SNAPSHOT, window={"S": "weekly"}), "window"),
    (schema.snapshot_from_item, without(SNAPSHOT, "window_start"), "window_start"),
    (schema.snapshot_from_item, changed(SNAPSHOT, window_start={"S": "2026-01-01"}), "window_start"),
]


@pytest.mark.parametrize("codec, item, attribute", CORRUPT, ids=[f"{c.__name__}-{a}-{i}" for i, (c, _, a) in enumerate(CORRUPT)])
def test_every_codec_names_the_item_and_the_attribute_of_a_wrong_value(codec, item, attribute):
    with pytest.raises(StorageError) as raised:
        codec(item)
    message = str(raised.value)
    assert f"{item['PK']['S']}/{item['SK']['S']} is corrupt" in message
    assert f"'{attribute}'" in message or f"{attribute}:" in message, message
    assert raised.value.code == "CorruptItem"


def test_good_items_read_back():
    assert schema.entity_from_item(ENTITY).cascade is True
    assert schema.entity_from_item(without(ENTITY, "cascade")).cascade is False  # written before the flag existed
    assert schema.limits_from_item(LIMITS) == [Limit.per_minute("rpm", 10)]
    assert schema.limits_from_item(without(LIMITS, "limits")) == []  # an item that only carries flags
    assert schema.disabled_of(changed(LIMITS, disabled={"BOOL": True})) is True and schema.disabled_of(LIMITS) is False
    schedule = [("0 9 * * *", [Limit.per_minute("rpm", 5)])]
    assert schema.schedule_from_item(changed(LIMITS, schedule=schema.schedule_value(schedule), schedule_since={"N": "7"})) == (
        (("0 9 * * *", (Limit.per_minute("rpm", 5),)),), 7)
    assert (schema.bucket_tats(BUCKET), schema.bucket_counters(BUCKET), schema.bucket_acquires(BUCKET)) == ({"rpm": 5}, {"rpm": 1000}, 1)
    snapshot = schema.snapshot_from_item(SNAPSHOT)
    assert (snapshot.counters, snapshot.counters_milli, snapshot.events) == ({"rpm": 1.0}, {"rpm": 1000}, 1)
