"""Faults injected between the limiter and the embedded DynamoDB, in every phase of a lease (acquire,
adjust, refund), with both on_unavailable policies and both APIs; each test then reads the bucket back
from the real server to show what was, and was not, recorded.

The proxy (fault_proxy.py) answers throttling and errors itself (nothing applied), cuts connections
before forwarding (nothing applied) or after (applied, answer lost), and holds answers past the read
timeout. Clock: a FakeClock, so token counts are exact."""

from __future__ import annotations

import logging
import uuid

import pytest
from botocore.config import Config

from conftest import transport_of
from fault_proxy import FaultProxy
from hammer import HARNESS
from zae_limiter import BucketContention, Limit, RateLimiterUnavailable, SyncRateLimiter, ValidationError
from zae_limiter.core import schema
from zae_limiter.core.calls import TransactionCanceled
from zae_limiter.transport.clients import make_client
from zae_limiter.core.errors import StorageError
from zae_limiter.local import ensure_table

pytestmark = pytest.mark.server

LIMITS = [Limit.per_minute("rpm", 10), Limit.per_minute("tpm", 1_000)]
NONE_ALLOWED = {"acquire": 0, "adjust": 0, "refund": 0}


class Boom(Exception):
    """The caller's own failure inside the block."""


@pytest.fixture(scope="module")
def table_name(endpoint_url):
    """One table for the module (a table per test would double its run time): each test works on its own
    resource (`api`), and cascade tests on their own entities."""
    name = f"faults_{uuid.uuid4().hex[:8]}"
    ensure_table(name, endpoint_url=endpoint_url, region="us-east-1")
    return name


@pytest.fixture(scope="module")
def dynamodb(endpoint_url):
    client = make_client("dynamodb", "us-east-1", endpoint_url, HARNESS)
    yield client
    client.close()


@pytest.fixture
def api() -> str:
    return f"api-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def proxy(endpoint_url):
    with FaultProxy(endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def make(make_limiter, proxy, clock):
    """A limiter (sync or async, per make_limiter's parameter) that talks to DynamoDB through the proxy.
    The read timeout is patient except where a test times a request out on purpose."""

    def make(on_unavailable: str = "block", read_timeout: float = 10.0, attempts: int = 3, **kwargs):
        config = Config(connect_timeout=1, read_timeout=read_timeout, retries={"mode": "standard", "total_max_attempts": attempts})
        return make_limiter(endpoint_url=proxy.url, boto_config=config, clock=clock, on_unavailable=on_unavailable, **kwargs)

    make.mode = make_limiter.mode
    return make


def counters(dynamodb, table_name, resource, entity_id="k") -> dict[str, int]:
    item = dynamodb.get_item(TableName=table_name, Key=schema.bucket_key(entity_id, resource), ConsistentRead=True).get("Item")
    return schema.bucket_counters(item)


def past_the_margin(limiter, clock) -> None:
    """Move the clock past the idle form's margin (0 where the limiter has none): the refill it held back
    after the first write is then returned, and token counts are exact again."""
    clock.advance(getattr(getattr(limiter, "limiter", limiter)._core, "idle_margin_ns", 0) / 10**9)


def key_of(entity_id: str):
    return lambda body: body.get("Key", {}).get("PK", {}).get("S") == schema.entity_pk(entity_id)


# -- timeouts and retries ------------------------------------------------------------------------------
def test_the_default_timeouts_and_retry_budget_reach_the_data_plane(endpoint_url, table_name):
    limiter = SyncRateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url)
    try:
        transport = transport_of(limiter)
        plane = transport.dataplane
        assert (plane.connect_timeout, plane.read_timeout) == (1.0, 2.0)
        # The same attempt budget as boto3's own calls (botocore's standard retry mode).
        assert plane.max_attempts == transport.client.meta.config.retries["total_max_attempts"] >= 2
    finally:
        limiter.close()
    tuned = SyncRateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url,
                            boto_config=Config(read_timeout=0.5, retries={"total_max_attempts": 2}))
    try:
        plane = transport_of(tuned).dataplane
        assert (plane.connect_timeout, plane.read_timeout, plane.max_attempts) == (1.0, 0.5, 2)
    finally:
        tuned.close()


def test_throttling_is_retried_within_the_budget(make, proxy, dynamodb, table_name, api):
    limiter = make(attempts=3)
    proxy.fail("UpdateItem", "throttle", times=2)
    with limiter.acquire("k", api, LIMITS, consume={"rpm": 1}):
        pass
    assert proxy.operations("throttle") == ["UpdateItem", "UpdateItem"]
    assert proxy.operations("forward").count("UpdateItem") == 1
    assert counters(dynamodb, table_name, api) == {"rpm": 1000}


@pytest.mark.parametrize("policy", ["block", "allow"])
def test_an_acquire_throttled_past_the_budget(make, proxy, dynamodb, table_name, policy, api):
    limiter = make(policy, attempts=3)
    proxy.fail("UpdateItem", "throttle")
    if policy == "block":
        with pytest.raises(RateLimiterUnavailable, match="after 3 attempts.*ThrottlingException"):
            with limiter.acquire("k", api, LIMITS, consume={"rpm": 1}):
                pytest.fail("the block must not run")
        assert limiter.unavailable_allowed == NONE_ALLOWED
    else:
        with limiter.acquire("k", api, LIMITS, consume={"rpm": 1}) as lease:
            assert lease.unchecked and lease.consumed == {}
        assert limiter.unavailable_allowed == {**NONE_ALLOWED, "acquire": 1}
    assert proxy.operations("throttle") == ["UpdateItem"] * 3  # the budget, not one more
    assert counters(dynamodb, table_name, api) == {}  # nothing was written


@pytest.mark.parametrize("policy", ["block", "allow"])
def test_an_acquire_with_the_server_gone(make, proxy, dynamodb, table_name, policy, api, clock):
    limiter = make(policy)
    with limiter.acquire("k", api, LIMITS, consume={"rpm": 1}):
        pass  # warm: stored limits cached, a keep-alive connection open (down() cuts it)
    proxy.down()
    if policy == "block":
        with pytest.raises(RateLimiterUnavailable, match="cannot connect"):
            with limiter.acquire("k", api, LIMITS, consume={"rpm": 2}):
                pytest.fail("the block must not run")
    else:
        with limiter.acquire("k", api, LIMITS, consume={"rpm": 2}) as lease:
            assert lease.unchecked
        assert limiter.unavailable_allowed == {**NONE_ALLOWED, "acquire": 1}
    proxy.up()
    with limiter.acquire("k", api, LIMITS, consume={"rpm": 4}):
        pass
    assert counters(dynamodb, table_name, api) == {"rpm": 5000}  # the two real acquires, nothing else
    past_the_margin(limiter, clock)
    assert limiter.available("k", api, LIMITS)["rpm"] == 5


@pytest.mark.parametrize("connection", ["fresh", "reused"])
@pytest.mark.parametrize("policy", ["block", "allow"])
def test_an_acquire_whose_answer_is_lost_is_not_sent_again(make, proxy, dynamodb, table_name, policy, connection, api):
    limiter = make(policy)
    with limiter.acquire("k", api, LIMITS, consume={"rpm": 1}):
        pass  # warm: stored limits cached and a keep-alive connection open
    if connection == "fresh":
        transport_of(limiter).dataplane.close()  # the next request opens a new connection
    proxy.fail("UpdateItem", "lost", times=1)
    sent = len(proxy.operations())
    if policy == "block":
        with pytest.raises(RateLimiterUnavailable, match="may or may not have been applied") as raised:
            with limiter.acquire("k", api, LIMITS, consume={"rpm": 1}):
                pytest.fail("the block must not run")
        assert raised.value.cause is not None
    else:
        with limiter.acquire("k", api, LIMITS, consume={"rpm": 1}) as lease:
            assert lease.unchecked
        assert limiter.unavailable_allowed["acquire"] == 1
    assert proxy.operations()[sent:] == ["UpdateItem"]  # never resent: a second write could charge twice
    # DynamoDB applied it: the caller is charged for an acquire it never got, which errs on the safe side.
    assert counters(dynamodb, table_name, api) == {"rpm": 2000}


# -- what is never "allowed" -------------------------------------------------------------------------
@pytest.mark.parametrize("code", ["AccessDeniedException", "UnrecognizedClientException", "ValidationException"])
def test_refusals_are_never_allowed_in_any_phase(make, proxy, dynamodb, table_name, code, caplog, api):
    limiter = make("allow")
    proxy.fail("UpdateItem", "error", code=code, times=1)
    with pytest.raises(StorageError, match=code) as raised:
        with limiter.acquire("k", api, LIMITS, consume={"rpm": 1}):
            pytest.fail("the block must not run")
    assert not isinstance(raised.value, RateLimiterUnavailable) and raised.value.code == code
    with caplog.at_level(logging.ERROR, logger="zae_limiter"):
        with pytest.raises(StorageError, match=code):
            with limiter.acquire("k", api, LIMITS, consume={"rpm": 1, "tpm": 10}) as lease:
                proxy.fail("UpdateItem", "error", code=code)  # the adjust, then the refund
                lease.adjust(tpm=5)
    assert f"refund of a lease on k/{api} failed" in caplog.text
    assert limiter.unavailable_allowed == NONE_ALLOWED
    assert proxy.operations("error") == ["UpdateItem"] * 3  # acquire, adjust, refund: none retried
    assert counters(dynamodb, table_name, api) == {"rpm": 1000, "tpm": 10_000}  # the refused refund left it taken


def test_bad_input_is_refused_before_any_request_even_with_allow(make, proxy, api):
    limiter = make("allow")
    with pytest.raises(ValidationError):
        with limiter.acquire("a#b", api, LIMITS, consume={"rpm": 1}):
            pass
    with limiter.acquire("k", api, LIMITS, consume={"rpm": 1}) as lease:
        sent = len(proxy.operations())
        with pytest.raises(ValidationError):
            lease.adjust(rpm=float("nan"))
        assert len(proxy.operations()) == sent
    assert limiter.unavailable_allowed == NONE_ALLOWED


# -- adjust --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["block", "allow"])
def test_an_adjust_throttled_past_the_budget(make, proxy, dynamodb, table_name, policy, api, clock):
    limiter = make(policy)
    with limiter.acquire("k", api, LIMITS, consume={"rpm": 1, "tpm": 100}) as lease:
        proxy.fail("UpdateItem", "throttle", times=3)
        if policy == "block":
            with pytest.raises(RateLimiterUnavailable, match="ThrottlingException"):
                lease.adjust(tpm=40)
        else:
            lease.adjust(tpm=40)
            assert limiter.unavailable_allowed == {**NONE_ALLOWED, "adjust": 1}
        assert lease.consumed == {"rpm": 1, "tpm": 100}  # the lease records only writes that succeeded
        lease.adjust(tpm=-30)  # the budget is spent: the next write goes through
    assert counters(dynamodb, table_name, api) == {"rpm": 1000, "tpm": 70_000}
    past_the_margin(limiter, clock)
    assert limiter.available("k", api, LIMITS)["tpm"] == 930


@pytest.mark.parametrize("policy,fault", [("allow", "stall"), ("block", "stall"), ("allow", "hang")])
def test_an_adjust_that_times_out(make, proxy, dynamodb, table_name, policy, fault, api):
    """`stall`: DynamoDB applied the adjust and the answer came too late; `hang`: it never arrived.
    Either way the write is not sent again, and the lease keeps only what it knows was applied."""
    limiter = make(policy, read_timeout=1.0)
    try:
        with limiter.acquire("k", api, LIMITS, consume={"rpm": 1, "tpm": 100}) as lease:
            proxy.fail("UpdateItem", fault, times=1)
            if policy == "allow":
                lease.adjust(tpm=40)
                assert limiter.unavailable_allowed == {**NONE_ALLOWED, "adjust": 1}
            else:
                lease.adjust(tpm=40)  # raises, and the lease refunds what it holds on the way out
            assert lease.consumed == {"rpm": 1, "tpm": 100}
    except RateLimiterUnavailable as error:
        assert policy == "block" and "not sent again" in str(error) and error.cause is not None
    assert proxy.operations(fault) == ["UpdateItem"]
    landed = 40_000 if fault == "stall" else 0
    refunded = policy == "block"
    expected = {"rpm": 0 if refunded else 1000, "tpm": (0 if refunded else 100_000) + landed}
    # An ambiguous write that landed stays counted: never a refund of what the lease cannot prove.
    assert counters(dynamodb, table_name, api) == expected


def test_the_boto3_path_never_resends_an_unanswered_write_either(make, proxy, dynamodb, table_name, api):
    """With lean_hot_path=False (or a proxy configured) boto3 carries the writes, and botocore's own
    retries would send a timed-out UpdateItem again: a refund given back twice."""
    limiter = make(read_timeout=1.0, lean_hot_path=False)
    with limiter.acquire("k", api, LIMITS, consume={"tpm": 100}) as lease:
        proxy.fail("UpdateItem", "stall", times=1)
        with pytest.raises(RateLimiterUnavailable, match="not sent again"):
            lease.adjust(tpm=-50)
        assert lease.consumed == {"tpm": 100}
    assert proxy.operations().count("UpdateItem") == 2  # the acquire, and the adjust once
    assert counters(dynamodb, table_name, api) == {"tpm": 50_000}  # it landed once, as the server says


# -- refund --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["block", "allow"])
def test_a_refund_throttled_past_the_budget_keeps_the_consumption_and_the_error(make, proxy, dynamodb, table_name, policy, caplog, api):
    limiter = make(policy)
    boom = Boom("the work failed")
    with caplog.at_level(logging.WARNING, logger="zae_limiter"):
        with pytest.raises(Boom) as raised:
            with limiter.acquire("k", api, LIMITS, consume={"rpm": 1, "tpm": 100}) as lease:
                lease.adjust(tpm=50)
                proxy.fail("UpdateItem", "throttle")
                raise boom
    assert raised.value is boom  # the caller's exception, unchanged
    assert proxy.operations("throttle") == ["UpdateItem"] * 3
    if policy == "block":
        assert f"refund of a lease on k/{api} failed" in caplog.text
        assert limiter.unavailable_allowed == NONE_ALLOWED
    else:
        assert "unavailable during refund, allowed by policy" in caplog.text
        assert limiter.unavailable_allowed == {**NONE_ALLOWED, "refund": 1}
    proxy.clear()
    assert counters(dynamodb, table_name, api) == {"rpm": 1000, "tpm": 150_000}
    # The lease is over: it can neither be adjusted nor refunded again, and it sends nothing more.
    sent = len(proxy.operations())
    with pytest.raises(ValidationError, match="lease has ended"):
        lease.adjust(tpm=1)
    limiter_core = getattr(limiter, "limiter", limiter)._core
    assert list(limiter_core.refund(lease._state)) == []
    assert len(proxy.operations()) == sent


# -- cascade: one level's write fails, the other's succeeds --------------------------------------------
@pytest.fixture
def cascade(make, api):
    """`make`, with an entity `make.key` that cascades to `make.proj` (unique to the test)."""
    make.key, make.proj = f"key-{api}", f"proj-{api}"
    setup = make()
    setup.create_entity(make.proj)
    setup.create_entity(make.key, parent_id=make.proj, cascade=True)
    return make


@pytest.mark.parametrize("policy", ["block", "allow"])
def test_a_partly_failed_cascade_adjust_and_refund_move_only_what_succeeded(cascade, proxy, dynamodb, table_name, policy, caplog, api, clock):
    limiter = cascade(policy)
    key, proj = cascade.key, cascade.proj
    with pytest.raises(Boom):
        with limiter.acquire(key, api, LIMITS, consume={"rpm": 1, "tpm": 100}) as lease:
            proxy.fail("UpdateItem", "throttle", when=key_of(proj))  # the parent's writes only
            if policy == "block":
                with pytest.raises(RateLimiterUnavailable):
                    lease.adjust(tpm=50)
            else:
                lease.adjust(tpm=50)
                assert limiter.unavailable_allowed["adjust"] == 1
            # The child's write succeeded, the parent's did not, and the lease knows which.
            assert lease._state.consumed == [{"rpm": 1000, "tpm": 150_000}, {"rpm": 1000, "tpm": 100_000}]
            raise Boom()
    # The refund gives the child back all it holds; the parent's refund is throttled: it keeps its part.
    assert counters(dynamodb, table_name, api, key) == {"rpm": 0, "tpm": 0}
    assert counters(dynamodb, table_name, api, proj) == {"rpm": 1000, "tpm": 100_000}
    assert lease._state.consumed == [{"rpm": 0, "tpm": 0}, {"rpm": 1000, "tpm": 100_000}]
    proxy.clear()
    past_the_margin(limiter, clock)
    assert limiter.available(key, api, LIMITS) == {"rpm": 10, "tpm": 1_000}
    assert limiter.available(proj, api, LIMITS) == {"rpm": 9, "tpm": 900}


def test_access_denied_on_one_level_is_not_hidden_by_an_outage_on_the_other(cascade, proxy, dynamodb, table_name, api):
    limiter = cascade("allow")
    key, proj = cascade.key, cascade.proj
    with limiter.acquire(key, api, LIMITS, consume={"rpm": 1}) as lease:
        proxy.fail("UpdateItem", "throttle", when=key_of(key))
        proxy.fail("UpdateItem", "error", code="AccessDeniedException", when=key_of(proj))
        with pytest.raises(StorageError, match="AccessDenied"):
            lease.adjust(rpm=1)
        proxy.clear()
    assert limiter.unavailable_allowed == NONE_ALLOWED


# -- transactions (cascade acquires) ---------------------------------------------------------------------
CONFLICT = {"CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}]}


def test_transaction_conflicts_are_retried_with_backoff(cascade, proxy, dynamodb, table_name, api):
    limiter = cascade()
    key, proj = cascade.key, cascade.proj
    proxy.fail("TransactWriteItems", "error", code="TransactionCanceledException", payload=CONFLICT, times=3)
    with limiter.acquire(key, api, LIMITS, consume={"rpm": 1}):
        pass
    assert proxy.operations().count("TransactWriteItems") == 4
    assert counters(dynamodb, table_name, api, key) == counters(dynamodb, table_name, api, proj) == {"rpm": 1000}


@pytest.mark.parametrize("policy", ["block", "allow"])
def test_transaction_conflicts_past_the_budget(cascade, proxy, dynamodb, table_name, policy, api):
    limiter = cascade(policy)
    key, proj = cascade.key, cascade.proj
    proxy.fail("TransactWriteItems", "error", code="TransactionCanceledException", payload=CONFLICT)
    # Conflicting transactions are other clients changing the same buckets: contention, not an outage, so
    # never let through by on_unavailable="allow" (DESIGN section 5), whatever the policy.
    with pytest.raises(BucketContention, match="8 times in a row") as raised:
        with limiter.acquire(key, api, LIMITS, consume={"rpm": 1}):
            pass
    assert isinstance(raised.value.cause, TransactionCanceled)
    assert limiter.unavailable_allowed["acquire"] == 0
    assert proxy.operations().count("TransactWriteItems") == 8
    assert counters(dynamodb, table_name, api, key) == {}


def test_a_transaction_refused_as_invalid_is_a_storage_error_not_an_outage(cascade, proxy, api):
    limiter = cascade("allow")
    key, proj = cascade.key, cascade.proj
    invalid = {"CancellationReasons": [{"Code": "ValidationError", "Message": "item too large"}, {"Code": "None"}]}
    proxy.fail("TransactWriteItems", "error", code="TransactionCanceledException", payload=invalid)
    with pytest.raises(StorageError, match="ValidationError"):
        with limiter.acquire(key, api, LIMITS, consume={"rpm": 1}):
            pass
    assert proxy.operations().count("TransactWriteItems") == 1
    assert limiter.unavailable_allowed == NONE_ALLOWED


# -- answers that are not DynamoDB's, and what a give-up carries ------------------------------------------
def test_a_non_json_5xx_answer_is_an_outage(make, proxy, api):
    """A load balancer's or gateway's HTML page instead of DynamoDB's JSON: retried, then unavailable."""
    limiter = make("allow")
    proxy.fail("UpdateItem", "html503")
    with limiter.acquire("k", api, LIMITS, consume={"rpm": 1}) as lease:
        assert lease.unchecked
    assert proxy.operations("html503") == ["UpdateItem"] * 3


def test_an_exhausted_budget_carries_the_last_cause(make, proxy, api):
    limiter = make()
    proxy.fail("UpdateItem", "throttle")
    with pytest.raises(RateLimiterUnavailable) as raised:
        with limiter.acquire("k", api, LIMITS, consume={"rpm": 1}):
            pass
    assert raised.value.cause is not None
