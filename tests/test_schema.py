"""The schema module: keys, the table definition, and item codecs including corrupt items."""

from datetime import datetime, timezone

import pytest

from zae_limiter import Entity, Limit, StorageError
from zae_limiter import schema


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
    from zae_limiter.acquire import Level, bucket_update

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
