"""Input held to DynamoDB's real limits, which moto does not enforce: the embedded server is put behind a
proxy that refuses, as AWS does, every request over them (dynamodb_limits.py, from the documentation).

- Ids are limited in UTF-8 bytes: the longest accepted id of 4-byte characters works end to end (entities,
  cascade, stored limits, children, usage snapshots from the aggregator, usage by resource); one byte
  more is a ValidationError up front.
- A Limit whose numbers would need a 39th digit is refused when it is built; the slowest accepted one
  works end to end, debt included.
- Amounts below one thousandth are refused, not counted as 0; usage sums are exact past a float's 53 bits.
- `adjust` after the lease's block: applied after a normal exit, refused after the refund of a raise.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import RequestCounter
from dynamodb_limits import enforcing, key_problems, number_problems, problems
from fault_proxy import FaultProxy
from zae_limiter import Entity, Limit, RateLimitExceeded, ValidationError
from zae_limiter.core import schema
from zae_limiter.core.acquire import Level, adjustment_update, bucket_update
from zae_limiter.local_stream import aggregate_stream
from zae_limiter.core.validation import MAX_ID_BYTES, MAX_ID_LENGTH, charged_milli, check_id, to_milli

pytestmark = pytest.mark.server

FOUR_BYTES = st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF, categories=("L", "N", "S", "P", "M"))
START = datetime(2026, 12, 31, 23, tzinfo=timezone.utc)


def longest(char: str) -> str:
    """The longest id of a 4-byte character that check_id accepts."""
    assert len(char.encode()) == 4
    return char * (MAX_ID_BYTES // 4)


@pytest.fixture
def proxy(endpoint_url):
    with FaultProxy(endpoint_url) as proxy:
        yield proxy


# -- ids --------------------------------------------------------------------------------------------
def every_key_written(entity_id: str, resource: str) -> list[dict]:
    """The items and keys the schema builds around one (entity, resource), its parent the same id."""
    entity = Entity(entity_id, parent_id=entity_id, cascade=True)
    items = [
        schema.entity_item(entity),
        schema.bucket_key(entity_id, resource),
        schema.entity_limits_key(entity_id, resource),
        schema.resource_defaults_key(resource),
        {schema.GSI1PK: schema.s(schema.parent_key(entity_id))},
    ]
    for window in schema.WINDOWS:
        items.append(schema.snapshot_identity(entity_id, resource, window, START))
    return items


# Ids of 4-byte characters of any accepted length, often near the byte limit (247 characters) and the
# character limit (256), where keys are longest.
LENGTHS = st.one_of(st.integers(1, MAX_ID_LENGTH), st.integers(MAX_ID_BYTES // 4 - 2, MAX_ID_LENGTH))
IDS = LENGTHS.flatmap(lambda size: st.text(FOUR_BYTES, min_size=size, max_size=size))


@settings(max_examples=200, deadline=None)
@given(IDS, IDS)
def test_every_key_built_around_an_accepted_id_is_within_dynamodbs_limits(entity_id, resource):
    try:
        check_id("entity_id", entity_id)
        check_id("resource", resource)
    except ValidationError as error:
        assert len(entity_id.encode()) > MAX_ID_BYTES or len(resource.encode()) > MAX_ID_BYTES, error
        return
    for item in every_key_written(entity_id, resource):
        assert list(key_problems(item, "item")) == []


def test_the_byte_limit_is_exact():
    check_id("entity_id", longest("\U0001F600"))
    check_id("entity_id", longest("\U0001F600")[:-1] + "abcd")  # ASCII counts one byte each
    # Only 4-byte characters reach the byte limit within 256 characters (256 * 3 bytes < 988).
    for over in (longest("\U0001F600") + "x", longest("\U0001F600") + "é", "\U0001F600" * 248, "\U00020000" * MAX_ID_LENGTH):
        assert len(over) <= MAX_ID_LENGTH and len(over.encode()) > MAX_ID_BYTES
        with pytest.raises(ValidationError, match="bytes in UTF-8") as raised:
            check_id("resource", over)
        assert raised.value.field == "resource"
    check_id("entity_id", "k" * MAX_ID_LENGTH)  # the character limit is unchanged


def test_the_longest_accepted_id_works_end_to_end_within_dynamodbs_limits(make_limiter, proxy, table_name, clock):
    limits = enforcing(proxy)
    parent, child, resource = longest("\U0001F642"), longest("\U0001F600"), longest("\U0001F680")
    assert len(child.encode()) == MAX_ID_BYTES
    limiter = make_limiter(endpoint_url=proxy.url, clock=clock)
    day = [Limit.per_day("rpm", 100)]
    limiter.create_entity(parent)
    limiter.create_entity(child, parent_id=parent, cascade=True, metadata={"team": "ml"})
    limiter.set_limits(parent, day, resource=resource)
    limiter.set_limits(child, day, resource=resource)
    limiter.set_resource_defaults(resource, day)
    with limiter.acquire(child, resource, consume={"rpm": 2}) as lease:
        lease.adjust(rpm=1)
    assert limiter.available(child, resource)["rpm"] == pytest.approx(97, abs=0.001)
    assert [e.entity_id for e in limiter.get_children(parent)] == [child]
    assert limiter.get_entity(child).cascade is True

    run = aggregate_stream(table_name, endpoint_url=proxy.url, windows="hourly,daily,monthly")
    assert run.failures == [] and run.snapshots_written > 0
    for window in schema.WINDOWS:
        (snapshot,) = limiter.get_usage_snapshots(entity_id=child, resource=resource, window=window)
        assert (snapshot.counters_milli, snapshot.events) == ({"rpm": 3000}, 1)
        # By resource (GSI2, whose sort key ends with the entity id): the child's and, by cascade, the parent's.
        summary = limiter.get_usage_summary(resource=resource, window=window)
        assert (summary.counters_milli, summary.snapshots) == ({"rpm": 6000}, 2)
    limiter.delete_entity(child)
    assert limits.found == []
    assert "UpdateItem" in proxy.operations() and "TransactWriteItems" in proxy.operations()


def test_an_id_one_byte_longer_is_refused_before_any_request(make_limiter, proxy):
    """Before: accepted (it is under 256 characters), and the keys built from it were over DynamoDB's
    limits: a StorageError at the first acquire, and snapshots the aggregator could never write."""
    enforcing(proxy)
    limiter = make_limiter(endpoint_url=proxy.url)
    counter = RequestCounter(limiter)
    over = longest("\U0001F600") + "x"
    day = [Limit.per_day("rpm", 100)]
    with pytest.raises(ValidationError) as raised:
        limiter.acquire("k", over, day, consume={"rpm": 1}).__enter__()
    assert raised.value.field == "resource"
    with pytest.raises(ValidationError) as raised:
        limiter.create_entity(over)
    assert raised.value.field == "entity_id"
    with pytest.raises(ValidationError) as raised:
        limiter.create_entity("child", parent_id=over)
    assert raised.value.field == "parent_id"
    assert counter.calls == [] and proxy.operations() == []


def test_the_aggregator_reports_a_bucket_whose_id_is_over_the_limit():
    """A bucket written before the limit (or by another tool) would make snapshot keys AWS refuses:
    reported as a poison record naming the key, not sent to be refused."""
    from aggregator.usage_records import PoisonRecord, parse_record

    over = longest("\U0001F600") + "x"
    key = schema.bucket_key("k", over)
    record = {
        "eventName": "INSERT",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026",
        "dynamodb": {"SequenceNumber": "100", "Keys": key, "ApproximateCreationDateTime": 1.8e9,
                     "NewImage": {**key, "c_rpm": {"N": "1000"}, "n": {"N": "1"}}},
    }
    with pytest.raises(PoisonRecord, match="bytes in UTF-8"):
        parse_record(record)


# -- numbers ----------------------------------------------------------------------------------------
SLOWEST = Limit("x", 1e15, 0.001, 1e10)  # 0.001 token per 1e19 ns: the slowest refill accepted


@pytest.mark.parametrize(
    "args",
    [("x", 1e15, 0.001, 1e12), ("x", 1e15, 0.001, 10_000_000_001), ("x", 1, 0.001, 1e11), ("x", 5, 1e-3, 2e10)],
    ids=["the-issue's", "one-second-slower", "small-capacity-slow-refill", "twice-too-slow"],
)
def test_a_limit_whose_numbers_would_pass_38_digits_is_refused_when_built(args):
    """Before: built, then every acquire on it a StorageError (DynamoDB refuses a 39-digit number)."""
    with pytest.raises(ValidationError, match="38 digits") as raised:
        Limit(*args)
    assert raised.value.field == "limit x"


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.floats(0.001, 1e15), refill=st.floats(0.001, 1e15), period=st.floats(1e-9, 1e15),
    taken=st.floats(0, 1), debt=st.floats(0.001, 1e15), soft=st.booleans(),
)
def test_every_number_an_accepted_limit_sends_fits_in_38_digits(capacity, refill, period, taken, debt, soft):
    """From the requests as built (busy and idle forms, a zero take, a soft limit's take past its
    capacity, adjusts and give-backs of any size), at the latest time time.time_ns() can give."""
    try:
        limit = Limit("x", capacity, refill, period, soft=soft)
    except ValidationError:
        return
    level = Level("k", (limit,))
    now = 2**63 - 1
    milli = round(debt * 1000) if soft else min(limit.capacity_milli, round(taken * limit.capacity_milli))
    cost = -((-round(debt * 1000) * limit.period_ns) // limit.refill_milli)
    requests = []
    for known in ({}, {"x": now}, {"x": now + limit.tau_ns}):
        requests += [
            bucket_update("t", level, "r", {"x": milli}, now, known),
            bucket_update("t", level, "r", {"x": 0}, now, known),
            adjustment_update("t", level, "r", {"x": cost}, {"x": round(debt * 1000)}, now, known),
            adjustment_update("t", level, "r", {"x": -cost}, {"x": -round(debt * 1000)}, now, known),
        ]
    for request in requests:
        assert problems("UpdateItem", request) == []


def test_the_slowest_accepted_limit_works_end_to_end_debt_included(make_limiter, proxy, dynamodb_client, table_name):
    limits = enforcing(proxy)
    limiter = make_limiter(endpoint_url=proxy.url)
    resource = f"api-{uuid.uuid4().hex[:8]}"
    with limiter.acquire("k", resource, [SLOWEST], consume={"x": 1e15}) as lease:  # the whole capacity
        for _ in range(8):  # the documented headroom: 8 adjusts of the largest amount on top of it
            lease.adjust(x=1e15)
    assert limiter.available("k", resource, [SLOWEST])["x"] == pytest.approx(-8e15, rel=1e-9)
    item = dynamodb_client.get_item(TableName=table_name, Key=schema.bucket_key("k", resource), ConsistentRead=True)["Item"]
    assert list(number_problems(item)) == []  # what DynamoDB computed (tat + cost) fits too
    assert int(item["c_x"]["N"]) == 9 * 10**18
    with pytest.raises(RateLimitExceeded):  # the bucket is in debt
        limiter.acquire("k", resource, [SLOWEST], consume={"x": 0.001}).__enter__()
    assert limits.found == []


@pytest.fixture
def dynamodb_client(endpoint_url):
    from zae_limiter.transport.clients import make_client

    client = make_client("dynamodb", "us-east-1", endpoint_url)
    yield client
    client.close()


# -- amounts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("amount", [0.0004, 0.0009999, -0.0005, 1e-300])
def test_an_amount_below_one_thousandth_is_refused_not_counted_as_zero(make_limiter, amount):
    limiter = make_limiter()
    limits = [Limit.per_minute("rpm", 10), Limit.per_minute("tpm", 1000)]
    resource = f"api-{uuid.uuid4().hex[:8]}"
    counter = RequestCounter(limiter)
    if amount > 0:
        with pytest.raises(ValidationError, match="at least 0.001") as raised:
            limiter.acquire("k", resource, limits, consume={"rpm": 1, "tpm": amount}).__enter__()
        assert raised.value.field == "consume['tpm']"
        with pytest.raises(ValidationError, match="at least 0.001") as raised:
            limiter.time_until_available("k", resource, {"tpm": amount}, limits)
        assert raised.value.field == "needed['tpm']"
        assert "UpdateItem" not in counter.calls
    with limiter.acquire("k", resource, limits, consume={"rpm": 1, "tpm": 0}) as lease:  # 0 stays allowed
        counter.reset()
        with pytest.raises(ValidationError, match="at least 0.001") as raised:
            lease.adjust(tpm=amount)
        assert raised.value.field == "adjust['tpm']"
        assert counter.calls == []
        lease.adjust(tpm=0)
    assert limiter.available("k", resource, limits)["tpm"] == 1000


def test_a_limit_below_one_thousandth_is_refused():
    """Before: 0.0006 counted as one thousandth, so the bucket held more than the Limit said."""
    for args in (("x", 0.0006, 1, 1), ("x", 1, 0.0009, 1)):
        with pytest.raises(ValidationError, match="at least 0.001"):
            Limit(*args)
    assert Limit("x", 0.001, 0.001, 1).capacity_milli == 1


# Thousandths counted from the decimal definition: an amount of n/1000 tokens is n thousandths, whatever
# its size (up to the 1e15 bound) and type. A float product loses them past 2**53 thousandths.
@given(st.integers(min_value=1, max_value=10**18 - 1))
@settings(max_examples=300, deadline=None)
def test_every_amount_of_whole_thousandths_is_counted_exactly(milli):
    tokens = Decimal(milli) / 1000
    assert charged_milli(tokens) == milli and to_milli(tokens) == milli
    assert charged_milli(-tokens) == -milli
    if milli < 10**15:  # 15 significant digits at most: a float holds the decimal exactly as written
        assert charged_milli(float(tokens)) == milli and to_milli(float(tokens)) == milli
    if milli % 1000 == 0:
        assert charged_milli(milli // 1000) == milli


def test_a_finer_fraction_is_rounded_in_the_limits_favour():
    assert charged_milli(Decimal("0.0025")) == charged_milli(0.0025) == 3  # a charge: up
    assert charged_milli(Decimal("-0.0025")) == charged_milli(-0.0025) == -2  # a give-back: towards zero
    assert charged_milli(Decimal("999999999999.9991")) == 999_999_999_999_999_001 // 1000 + 1
    # Past the decimal context's 28 digits: still exact (a Decimal product would round it away).
    assert charged_milli(Decimal("1." + "0" * 40 + "1")) == 1001
    assert charged_milli(Decimal("-1." + "0" * 40 + "1")) == -1000


def test_float_noise_is_not_a_fraction_and_number_subclasses_count_as_their_values():
    assert charged_milli(0.1 + 0.2) == 300  # 0.30000000000000004: arithmetic noise, not a thousandth more
    assert charged_milli(0.1 * 3) == to_milli(0.1 * 3) == 300

    class Tokens(float):
        def __repr__(self) -> str:  # as numpy's float64 prints itself
            return f"Tokens({float(self)})"

    class Count(int):
        pass

    assert charged_milli(Tokens(2.5)) == to_milli(Tokens(2.5)) == 2500
    assert charged_milli(Count(3)) == to_milli(Count(3)) == 3000


@pytest.mark.parametrize("amount", [999_999_999_999_999, Decimal("999999999999999.999"), 999999999999.999],
                         ids=["int", "Decimal", "float"])
def test_a_large_amount_reaches_the_stored_counter_exactly(make_limiter, dynamodb_client, table_name, amount):
    """Before: 999_999_999_999_999 tokens were counted 24 thousandths short (the float product)."""
    limiter = make_limiter()
    limits = [Limit("tpm", 1e15, 1e15, 1)]
    resource = f"api-{uuid.uuid4().hex[:8]}"
    with limiter.acquire("k", resource, limits, consume={"tpm": amount}) as lease:
        lease.adjust(tpm=Decimal("0.001"))
    item = dynamodb_client.get_item(TableName=table_name, Key=schema.bucket_key("k", resource), ConsistentRead=True)["Item"]
    assert schema.bucket_counters(item) == {"tpm": int(Decimal(str(amount)) * 1000) + 1}


# -- usage sums -------------------------------------------------------------------------------------
def test_usage_sums_stay_exact_past_a_floats_precision(make_limiter, dynamodb_client, table_name):
    """Snapshot counters are summed in whole thousandths: 2**53 + 1 thousandths has no float."""
    big = 2**53 + 1
    resource = f"api-{uuid.uuid4().hex[:8]}"
    for hour in range(3):
        item = {**schema.snapshot_identity("k", resource, "hourly", START + timedelta(hours=hour)),
                "c_tpm": {"N": str(big)}, "n": {"N": "1"}}
        dynamodb_client.put_item(TableName=table_name, Item=item)
    limiter = make_limiter()
    snapshots = limiter.get_usage_snapshots(entity_id="k", resource=resource)
    assert [s.counters_milli for s in snapshots] == [{"tpm": big}] * 3
    for summary in (limiter.get_usage_summary(entity_id="k", resource=resource), limiter.get_usage_summary(resource=resource)):
        assert summary.counters_milli == {"tpm": 3 * big}
        assert summary.counters == {"tpm": 3 * big / 1000}  # the nearest float, for display


def test_the_aggregators_sums_are_whole_numbers_end_to_end():
    from aggregator.snapshots import Settings, merge, update_request
    from aggregator.usage_records import parse_record

    def record(sequence: int, old: int, new: int) -> dict:
        key = schema.bucket_key("k", "api")
        return {
            "eventName": "MODIFY", "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026",
            "dynamodb": {"SequenceNumber": str(sequence), "Keys": key, "ApproximateCreationDateTime": 1.8e9,
                         "OldImage": {**key, "c_tpm": {"N": str(old)}}, "NewImage": {**key, "c_tpm": {"N": str(new)}}},
        }

    base = 10**30  # far past a float's precision
    deltas = [parse_record(record(100, base, base + 2**53 + 1)), parse_record(record(101, base + 2**53 + 1, base + 2**54 + 3))]
    (change,) = merge(deltas, Settings(("hourly",)))
    request = update_request(change, Settings(("hourly",)))
    assert request["ExpressionAttributeValues"][":c0"] == {"N": str(2**54 + 3)}


# -- adjust after the block -------------------------------------------------------------------------
def test_adjust_after_a_normal_exit_is_applied(make_limiter, clock):
    """The usage of a streamed answer is often known only after the block: the adjustment still counts."""
    limiter = make_limiter(clock=clock)
    limits = [Limit.per_day("tpm", 86_400)]  # one token a second: the clock stands still, so counts are exact
    resource = f"api-{uuid.uuid4().hex[:8]}"
    with limiter.acquire("k", resource, limits, consume={"tpm": 500}) as lease:
        pass
    lease.adjust(tpm=242)
    assert lease.consumed == {"tpm": 742}
    assert limiter.available("k", resource, limits)["tpm"] == pytest.approx(86_400 - 742, abs=0.06)
    lease.adjust(tpm=-742)
    # Full again (less at most the idle margin's refill, 0.05 s: one token a second).
    assert limiter.available("k", resource, limits)["tpm"] == pytest.approx(86_400, abs=0.06)


def test_adjust_after_the_refund_of_a_raise_is_refused(make_limiter, clock):
    limiter = make_limiter(clock=clock)
    limits = [Limit.per_day("tpm", 86_400)]
    resource = f"api-{uuid.uuid4().hex[:8]}"
    counter = RequestCounter(limiter)
    with pytest.raises(RuntimeError):
        with limiter.acquire("k", resource, limits, consume={"tpm": 500}) as lease:
            raise RuntimeError("the work failed")
    counter.reset()
    for delta in (242, -100):
        with pytest.raises(ValidationError, match="refunded when its block raised") as raised:
            lease.adjust(tpm=delta)
        assert raised.value.field == "lease"
    assert counter.calls == []
    assert limiter.available("k", resource, limits)["tpm"] == pytest.approx(86_400, abs=0.06)
