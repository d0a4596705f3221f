"""Bad input everywhere gets a clear error and writes nothing: ids at every public entry point (they become
parts of keys, so they must not escape their prefix), argument types, constructor options; and stored
items that are corrupt give a StorageError naming their key on every path that reads them."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import RequestCounter
from zae_limiter import Limit, SyncRateLimiter, ValidationError
from zae_limiter.core import schema
from zae_limiter.core.calls import ConditionFailed
from zae_limiter.cli import cli
from zae_limiter.transport.clients import make_client
from zae_limiter.core.errors import StorageError
from zae_limiter.state.limiter_core import LimiterCore
from zae_limiter.local import ensure_table
from zae_limiter.core.validation import MAX_ID_BYTES, MAX_ID_LENGTH, check_id

pytestmark = pytest.mark.server

LIMITS = [Limit.per_minute("rpm", 10)]
# One byte over the limit in UTF-8, in 248 characters (well under 256): 247 four-byte characters and one more.
BYTE_TOO_MANY = "\U0001F600" * (MAX_ID_BYTES // 4) + "x"
BAD_IDS = ["", "a#b", "#", "k" * (MAX_ID_LENGTH + 1), "k\x00", "k\n", "k\u200b", "k\u2028", 7, b"k", BYTE_TOO_MANY]

# Every public method that takes an id, with the id it is handed in the slot named by `field`.
ENTRY_POINTS = {
    "acquire entity_id": ("entity_id", lambda l, x: l.acquire(x, "api", LIMITS, consume={"rpm": 1}).__enter__()),
    "acquire resource": ("resource", lambda l, x: l.acquire("k", x, LIMITS, consume={"rpm": 1}).__enter__()),
    "available": ("entity_id", lambda l, x: l.available(x, "api", LIMITS)),
    "available resource": ("resource", lambda l, x: l.available("k", x, LIMITS)),
    "time_until_available": ("resource", lambda l, x: l.time_until_available("k", x, {"rpm": 1}, LIMITS)),
    "create_entity": ("entity_id", lambda l, x: l.create_entity(x)),
    "create_entity parent": ("parent_id", lambda l, x: l.create_entity("child", parent_id=x)),
    "get_entity": ("entity_id", lambda l, x: l.get_entity(x)),
    "delete_entity": ("entity_id", lambda l, x: l.delete_entity(x)),
    "get_children": ("parent_id", lambda l, x: l.get_children(x)),
    "set_limits": ("entity_id", lambda l, x: l.set_limits(x, LIMITS)),
    "set_limits resource": ("resource", lambda l, x: l.set_limits("k", LIMITS, resource=x)),
    "get_limits": ("entity_id", lambda l, x: l.get_limits(x)),
    "delete_limits": ("resource", lambda l, x: l.delete_limits("k", x)),
    "set_resource_defaults": ("resource", lambda l, x: l.set_resource_defaults(x, LIMITS)),
    "get_resource_defaults": ("resource", lambda l, x: l.get_resource_defaults(x)),
    "delete_resource_defaults": ("resource", lambda l, x: l.delete_resource_defaults(x)),
    "get_usage_snapshots": ("entity_id", lambda l, x: l.get_usage_snapshots(entity_id=x)),
    "get_usage_summary": ("resource", lambda l, x: l.get_usage_summary(resource=x)),
}


def test_every_entry_point_refuses_ids_that_could_escape_their_key(make_limiter):
    limiter = make_limiter()
    counter = RequestCounter(limiter)
    for entry, (field, call) in ENTRY_POINTS.items():
        for bad in BAD_IDS:
            with pytest.raises(ValidationError) as raised:
                call(limiter, bad)
            assert raised.value.field == field, (entry, bad)
    assert counter.calls == []  # refused before any request


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.text(alphabet=st.sampled_from("ab#\x00\n\u200b é"), max_size=6)))
def test_an_accepted_id_stays_inside_its_key(text):
    try:
        check_id("entity_id", text)
    except ValidationError:
        assert not text or "#" in text or len(text) > MAX_ID_LENGTH or any(
            not ch.isprintable() and ch != " " for ch in text
        ) or any(ch in "\u200b\u2028\u2029" for ch in text) or len(text.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES
        return
    assert text and "#" not in text and len(text) <= MAX_ID_LENGTH
    assert schema.entity_id_of(schema.entity_pk(text)) == text
    assert schema.bucket_resource_of(schema.bucket_sk(text)) == text
    assert schema.entity_pk(text).count("#") == 1  # nothing after the prefix can start another segment


@pytest.mark.parametrize(
    "limits",
    [Limit.per_minute("rpm", 10), "rpm=10/min", {"rpm": 10}, [LIMITS[0], LIMITS[0]], ["rpm=1/min"], 5],
    ids=["one-limit", "text", "dict", "twice", "list-of-text", "number"],
)
def test_a_wrong_limits_argument_is_a_validation_error(make_limiter, limits):
    limiter = make_limiter()
    with pytest.raises(ValidationError) as raised:
        limiter.available("k", "api", limits)
    assert raised.value.field == "limits"
    with pytest.raises(ValidationError):
        limiter.set_limits("k", limits)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"on_unavailable": "ignore"}, "on_unavailable"),
        ({"region": 5}, "region"),
        ({"endpoint_url": "ftp://127.0.0.1:1"}, "endpoint_url"),
        ({"boto_config": {"read_timeout": 1}}, "boto_config"),
        ({"config_cache_seconds": -1}, "config_cache_seconds"),
        ({"bucket_cache_size": 0}, "bucket_cache_size"),
        ({"bucket_cache_size": 10.5}, "bucket_cache_size"),
        ({"reject_cache_seconds": math.nan}, "reject_cache_seconds"),
        ({"table_name": "a#b"}, "table_name"),
        ({"stack_options": {"table_name": "x"}}, "stack_options"),
        ({"create_stack": "yes"}, "create_stack"),
    ],
)
def test_constructor_options_are_checked(kwargs, field):
    with pytest.raises(ValidationError) as raised:
        SyncRateLimiter(**{"table_name": "t", "region": "us-east-1", **kwargs})
    assert raised.value.field == field


# -- corrupt stored items ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def table_name(endpoint_url):
    """One table for the module; each test below works on its own entity `k` and resource `api`."""
    name = f"input_{uuid.uuid4().hex[:8]}"
    ensure_table(name, endpoint_url=endpoint_url, region="us-east-1")
    return name


@pytest.fixture(scope="module")
def dynamodb(endpoint_url):
    client = make_client("dynamodb", "us-east-1", endpoint_url)
    yield client
    client.close()


@pytest.fixture
def k() -> str:
    return f"k-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def api() -> str:
    return f"api-{uuid.uuid4().hex[:8]}"


def put(dynamodb, table_name, item):
    dynamodb.put_item(TableName=table_name, Item=item)


def meta(key_id, **attrs):
    return {**schema.meta_key(key_id), **attrs}


# Each corruption, and the attribute the error must name.
CORRUPT_ENTITIES = {
    "no entity_id": (lambda k: meta(k, cascade={"BOOL": False}), "entity_id"),
    "entity_id not a string": (lambda k: meta(k, entity_id={"N": "5"}), "entity_id"),
    "parent escapes its key": (
        lambda k: meta(k, entity_id={"S": k}, parent_id={"S": "p#BUCKET#x"}, cascade={"BOOL": True}), "parent_id"),
    "metadata not strings": (lambda k: meta(k, entity_id={"S": k}, metadata={"M": {"a": {"N": "1"}}}), "metadata.a"),
    "bad created_at": (lambda k: meta(k, entity_id={"S": k}, created_at={"S": "yesterday"}), "created_at"),
    # Read as False before: the parent's limit silently stopped applying.
    "cascade as the string true": (lambda k: meta(k, entity_id={"S": k}, parent_id={"S": "p"}, cascade={"S": "true"}), "cascade"),
    "cascade as the number 1": (lambda k: meta(k, entity_id={"S": k}, parent_id={"S": "p"}, cascade={"N": "1"}), "cascade"),
    "name not a string": (lambda k: meta(k, entity_id={"S": k}, name={"N": "7"}), "name"),
    "parent_id not a string": (lambda k: meta(k, entity_id={"S": k}, parent_id={"L": []}), "parent_id"),
    "metadata not a map": (lambda k: meta(k, entity_id={"S": k}, metadata={"S": "team=ml"}), "metadata"),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPT_ENTITIES))
def test_a_corrupt_entity_record_is_named_on_every_read(make_limiter, dynamodb, table_name, corruption, k, api):
    build, attribute = CORRUPT_ENTITIES[corruption]
    item = build(k)
    put(dynamodb, table_name, item)
    limiter = make_limiter()
    counter = RequestCounter(limiter)
    reads = [
        lambda: limiter.get_entity(k),
        lambda: limiter.available(k, api, LIMITS),
        lambda: limiter.acquire(k, api, LIMITS, consume={"rpm": 1}).__enter__(),
    ]
    for read in reads:
        with pytest.raises(StorageError, match=f"ENTITY#{k}/#META is corrupt") as raised:
            read()
        assert raised.value.code == "CorruptItem"
        assert f"'{attribute}'" in str(raised.value) or f"{attribute}:" in str(raised.value), str(raised.value)
    assert "UpdateItem" not in counter.calls  # nothing was taken on the strength of a corrupt record
    # A corrupt child spoils the listing of its parent's children, clearly.
    parent = f"p-{k}"
    put(dynamodb, table_name, {**item, schema.GSI1PK: {"S": schema.parent_key(parent)}, schema.GSI1SK: {"S": f"ENTITY#{k}"}})
    with pytest.raises(StorageError, match=f"ENTITY#{k}/#META"):
        limiter.get_children(parent)


CORRUPT_LIMITS = {
    "negative capacity": {"rpm": {"M": {"capacity": {"N": "-1"}, "refill_amount": {"N": "1"}, "refill_period_seconds": {"N": "60"}}}},
    "text capacity": {"rpm": {"M": {"capacity": {"S": "ten"}, "refill_amount": {"N": "1"}, "refill_period_seconds": {"N": "60"}}}},
    "huge period": {"rpm": {"M": {"capacity": {"N": "1"}, "refill_amount": {"N": "1"}, "refill_period_seconds": {"N": "1e125"}}}},
    "bad limit name": {"r-p-m": {"M": {"capacity": {"N": "1"}, "refill_amount": {"N": "1"}, "refill_period_seconds": {"N": "60"}}}},
    "missing field": {"rpm": {"M": {"capacity": {"N": "1"}}}},
}


@pytest.mark.parametrize("corruption", sorted(CORRUPT_LIMITS))
def test_corrupt_stored_limits_are_named_on_every_read(make_limiter, dynamodb, table_name, corruption, k):
    limiter = make_limiter(config_cache_seconds=0)
    counter = RequestCounter(limiter)
    levels = {
        # level: (key, how the error names it, the level's own read); each on a resource of its own
        "entity": (lambda r: schema.entity_limits_key(k, r), lambda r: f"ENTITY#{k}/#LIMIT#{r}", lambda r: limiter.get_limits(k, r)),
        "resource": (schema.resource_defaults_key, lambda r: f"RESOURCE#{r}/#DEFAULTS", limiter.get_resource_defaults),
    }
    for level, (key, where, get) in levels.items():
        api = f"{level}-{uuid.uuid4().hex[:8]}"
        put(dynamodb, table_name, {**key(api), schema.LIMITS_ATTR: {"M": CORRUPT_LIMITS[corruption]}})
        for read in (lambda: get(api), lambda: limiter.available(k, api, LIMITS),
                     lambda: limiter.acquire(k, api, None, consume={"rpm": 1}).__enter__()):
            with pytest.raises(StorageError, match=f"{where(api)} is corrupt"):
                read()
    assert "UpdateItem" not in counter.calls
    # System defaults are one item for the whole table: checked with the codec alone.
    with pytest.raises(StorageError, match="SYSTEM#/#DEFAULTS is corrupt"):
        schema.limits_from_item({**schema.system_defaults_key(), schema.LIMITS_ATTR: {"M": CORRUPT_LIMITS[corruption]}})


@pytest.mark.parametrize("attr", ["b_rpm", "c_rpm", "n"])
def test_a_corrupt_bucket_is_named_when_read(make_limiter, dynamodb, table_name, attr, k):
    put(dynamodb, table_name, {**schema.bucket_key(k, "api"), attr: {"N": "1.5"} if attr == "b_rpm" else {"S": "x"}})
    where = f"ENTITY#{k}/#BUCKET#api is corrupt"
    limiter = make_limiter()
    if attr == "b_rpm":
        with pytest.raises(StorageError, match=where):
            limiter.available(k, "api", LIMITS)
        with pytest.raises(StorageError, match=where):
            limiter.time_until_available(k, "api", {"rpm": 1}, LIMITS)
    item = dynamodb.get_item(TableName=table_name, Key=schema.bucket_key(k, "api"))["Item"]
    reader = {"b_rpm": schema.bucket_tats, "c_rpm": schema.bucket_counters, "n": schema.bucket_acquires}[attr]
    with pytest.raises(StorageError, match=where):
        reader(item)


def test_a_refused_acquire_whose_answer_holds_a_corrupt_bucket_names_it():
    """The rejection path decides from the item DynamoDB returns with a failed condition (ALL_OLD)."""
    core = LimiterCore("t", clock=lambda: 10**18, config_cache_seconds=0)
    flow = core.acquire("k", "api", LIMITS, {"rpm": 1})
    call = next(flow)
    assert call.operation == "BatchGetItem"
    call = flow.send({"Responses": {"t": []}})
    assert call.operation == "UpdateItem"
    with pytest.raises(StorageError, match="ENTITY#k/#BUCKET#api is corrupt"):
        flow.throw(ConditionFailed({**schema.bucket_key("k", "api"), "b_rpm": {"S": "soon"}}))


def snapshot_item(k, **overrides):
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    item = {**schema.snapshot_identity(k, k, "hourly", start), "c_rpm": {"N": "1000"}, "n": {"N": "1"}}
    item.update(overrides)
    return item


@pytest.mark.parametrize(
    "overrides",
    [{"c_rpm": {"S": "lots"}}, {"n": {"N": "1.5"}}, {"window_start": {"S": "2026-01-01"}}, {"entity_id": {"S": "a#b"}},
     {"window": {"S": "weekly"}}],
    ids=["counter", "events", "window_start", "entity_id", "window"],
)
def test_a_corrupt_usage_snapshot_is_named_by_both_read_paths(make_limiter, dynamodb, table_name, overrides, k):
    item = snapshot_item(k, **overrides)  # entity k, resource k: unique to this test
    put(dynamodb, table_name, item)
    limiter = make_limiter()
    where = f"{item['PK']['S']}/{item['SK']['S']} is corrupt"
    for read in (lambda: limiter.get_usage_snapshots(entity_id=k, resource=k),
                 lambda: limiter.get_usage_summary(resource=k)):
        with pytest.raises(StorageError, match=where):
            read()


def test_the_cli_reports_a_corrupt_record_with_its_key_and_no_traceback(endpoint_url, table_name, dynamodb, k):
    put(dynamodb, table_name, CORRUPT_ENTITIES["no entity_id"][0](k))
    env = {"ZAE_LIMITER_ENDPOINT_URL": endpoint_url, "ZAE_LIMITER_TABLE": table_name, "AWS_DEFAULT_REGION": "us-east-1"}
    result = CliRunner().invoke(cli, ["entity", "show", k], env=env)
    assert result.exit_code == 1
    assert f"ENTITY#{k}/#META is corrupt" in result.output and "Traceback" not in result.output


def test_levels_read_from_an_older_configuration_are_not_cached_past_it():
    """A configuration read that was overtaken (the limits changed, and were read again, meanwhile)
    caches neither what it read nor the levels built from it: the newer limits stay in force."""
    from zae_limiter.core.config import StoredConfig

    core = LimiterCore("t", clock=lambda: 10**18, config_cache_seconds=60)
    old_read = core.levels("k", "api", None)
    assert next(old_read).operation == "BatchGetItem"  # the old limits' read is in flight...
    newer = StoredConfig(None, (Limit.per_minute("rpm", 99),), None)
    core.invalidate_config()  # ...set_limits happens, and another caller reads the new limits
    core.configs.seed("k", "api", newer)
    old_limits = schema.limits_item(schema.entity_limits_key("k", "api"), [Limit.per_minute("rpm", 1)])
    with pytest.raises(StopIteration) as done:
        old_read.send({"Responses": {"t": [old_limits]}})
    assert done.value.value[0].limits == (Limit.per_minute("rpm", 1),)  # this caller got what it read
    fresh = core.levels("k", "api", None)
    with pytest.raises(StopIteration) as done:
        next(fresh)  # answered from the cache without a request...
    assert done.value.value[0].limits == (Limit.per_minute("rpm", 99),)  # ...with the newer limits
