"""Every write the runtime makes, on both transports (the lean data plane and boto3), with its answer lost
in each way the fault proxy can lose one: cut after forwarding ("lost"), cut mid-head ("headcut"), cut
mid-body ("truncate"), a body changed on the way so that its x-amz-crc32 no longer matches ("badcrc"), a
gateway's 502 after forwarding ("gateway"). DynamoDB applied each of them; the rules
(zae_limiter/core/answers.py) decide what the caller sees, and the table is read back from the embedded
server to show the write landed once:

- a write that is not idempotent (acquire, adjust, refund: UpdateItem; create_entity: a conditional
  PutItem) is sent once and never again; the caller gets WriteOutcomeUnknown (a RateLimiterUnavailable),
  except create_entity, which reads its record back and returns the entity;
- an idempotent one (a cascade's TransactWriteItems with its ClientRequestToken, delete_entity's
  BatchWriteItem) is sent again and succeeds, applied once;
- set_limits' and delete_limits' UpdateItem of an entity's limits item is conditional on its version (a
  resend could set the version back below the buckets'), so it is sent once; the item read back shows
  it landed. So is disable's. A resource's defaults (a shared item: sets and removes only, no version)
  are sent again;
- the operator controls are sent once: top_up (its tokens would be added twice), reset and set_parent
  (conditional on the item existing); the caller gets WriteOutcomeUnknown and the table shows one
  application.

Then the framing faults of the lean path, and the keep-alive race, each through a real limiter. (A change
of limits that meets another admin's: test_reliability_lost_limits.py.)"""

from __future__ import annotations

import http.client
import logging
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    HTTPClientError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from fault_proxy import FaultProxy
from test_reliability_faults import LIMITS, Boom, api, counters, dynamodb, key_of, make, proxy, table_name  # noqa: F401
from zae_limiter import EntityNotFoundError, Limit, RateLimitExceeded, RateLimiterUnavailable
from zae_limiter.core import schema
from zae_limiter.core.answers import WriteOutcomeUnknown

pytestmark = pytest.mark.server

FAULTS = ["lost", "headcut", "truncate", "badcrc", "gateway"]


def sent(proxy: FaultProxy, since: int, operation: str) -> int:
    return proxy.operations()[since:].count(operation)


# -- not idempotent: sent once, never again ----------------------------------------------------------------
def acquire(limiter, proxy, fault, dynamodb, table_name, api, caplog):
    with limiter.acquire("k", api, LIMITS, consume={"rpm": 1}):
        pass  # warm: the stored-limits lookup is cached
    proxy.fail("UpdateItem", fault, times=1)
    since = len(proxy.operations())
    with pytest.raises(WriteOutcomeUnknown, match="may or may not have been applied, so it is not sent again") as raised:
        with limiter.acquire("k", api, LIMITS, consume={"rpm": 1}):
            pytest.fail("the block must not run")
    assert raised.value.cause is not None
    assert sent(proxy, since, "UpdateItem") == 1
    assert counters(dynamodb, table_name, api) == {"rpm": 2000}  # applied once: charged, never twice


def adjust(limiter, proxy, fault, dynamodb, table_name, api, caplog):
    with limiter.acquire("k", api, LIMITS, consume={"rpm": 1, "tpm": 100}) as lease:
        proxy.fail("UpdateItem", fault, times=1)
        since = len(proxy.operations())
        with pytest.raises(WriteOutcomeUnknown):
            lease.adjust(tpm=40)
        assert lease.consumed == {"rpm": 1, "tpm": 100}  # the lease records only what it saw applied
    assert sent(proxy, since, "UpdateItem") == 1
    assert counters(dynamodb, table_name, api) == {"rpm": 1000, "tpm": 140_000}


def refund(limiter, proxy, fault, dynamodb, table_name, api, caplog):
    with caplog.at_level(logging.ERROR, logger="zae_limiter"):
        with pytest.raises(Boom):
            with limiter.acquire("k", api, LIMITS, consume={"rpm": 1, "tpm": 100}):
                proxy.fail("UpdateItem", fault, times=1)
                since = len(proxy.operations())
                raise Boom()
    assert f"refund of a lease on k/{api} failed" in caplog.text and "not sent again" in caplog.text
    assert sent(proxy, since, "UpdateItem") == 1
    assert counters(dynamodb, table_name, api) == {"rpm": 0, "tpm": 0}  # given back once, not twice


def cascade_adjust(limiter, proxy, fault, dynamodb, table_name, api, caplog):
    key, proj = f"key-{api}", f"proj-{api}"
    limiter.create_entity(proj)
    limiter.create_entity(key, parent_id=proj, cascade=True)
    with limiter.acquire(key, api, LIMITS, consume={"rpm": 1, "tpm": 100}) as lease:
        proxy.fail("UpdateItem", fault, times=1, when=key_of(proj))  # the parent's write only
        since = len(proxy.operations())
        with pytest.raises(WriteOutcomeUnknown):
            lease.adjust(tpm=50)
        assert lease._state.consumed == [{"rpm": 1000, "tpm": 150_000}, {"rpm": 1000, "tpm": 100_000}]
    assert sent(proxy, since, "UpdateItem") == 2  # the child's and the parent's, once each
    assert counters(dynamodb, table_name, api, key) == counters(dynamodb, table_name, api, proj) == {"rpm": 1000, "tpm": 150_000}


def create_entity(limiter, proxy, fault, dynamodb, table_name, api, caplog):
    proxy.fail("PutItem", fault, times=1)
    since = len(proxy.operations())
    entity = limiter.create_entity(f"e-{api}", name="Team", metadata={"tier": "gold"})
    assert (entity.entity_id, entity.name, entity.metadata) == (f"e-{api}", "Team", {"tier": "gold"})
    assert limiter.get_entity(f"e-{api}") == entity
    assert sent(proxy, since, "PutItem") == 1  # never resent: a resend fails on its own first write
    assert sent(proxy, since, "GetItem") >= 1  # the record read back


# -- idempotent: sent again, applied once -------------------------------------------------------------------
def cascade(limiter, proxy, fault, dynamodb, table_name, api, caplog):
    key, proj = f"key-{api}", f"proj-{api}"
    limiter.create_entity(proj)
    limiter.create_entity(key, parent_id=proj, cascade=True)
    with limiter.acquire(key, api, LIMITS, consume={"rpm": 1}):
        pass  # warm
    proxy.fail("TransactWriteItems", fault, times=1)
    since = len(proxy.operations())
    with limiter.acquire(key, api, LIMITS, consume={"rpm": 1}):
        pass
    assert proxy.operations()[since:] == ["TransactWriteItems", "TransactWriteItems"]
    assert proxy.operations("replayed") == ["TransactWriteItems"]  # the same token: DynamoDB does not apply it again
    assert counters(dynamodb, table_name, api, key) == counters(dynamodb, table_name, api, proj) == {"rpm": 2000}


def limits_item(body: dict) -> bool:
    return body.get("Key", {}).get("SK", {}).get("S", "").startswith("#LIMIT#")


def set_limits(limiter, proxy, fault, dynamodb, table_name, api, caplog):
    proxy.fail("UpdateItem", fault, times=1, when=limits_item)
    since = len(proxy.operations())
    limiter.set_limits(f"e-{api}", [Limit.per_minute("rpm", 7)], resource=api)
    assert sent(proxy, since, "UpdateItem") == 1  # conditional on its version: never sent twice
    assert sent(proxy, since, "GetItem") == 1  # the item read back: it landed
    assert limiter.get_limits(f"e-{api}", resource=api) == [Limit.per_minute("rpm", 7)]


def delete_limits(limiter, proxy, fault, dynamodb, table_name, api, caplog):
    limiter.set_limits(f"e-{api}", [Limit.per_minute("rpm", 7)], resource=api)
    proxy.fail("UpdateItem", fault, times=1, when=limits_item)
    since = len(proxy.operations())
    limiter.delete_limits(f"e-{api}", resource=api)
    assert sent(proxy, since, "UpdateItem") == 1
    assert sent(proxy, since, "GetItem") == 1
    assert limiter.get_limits(f"e-{api}", resource=api) == []


def delete_entity(limiter, proxy, fault, dynamodb, table_name, api, caplog):
    limiter.create_entity(f"e-{api}")
    limiter.set_limits(f"e-{api}", [Limit.per_minute("rpm", 7)], resource=api)
    proxy.fail("BatchWriteItem", fault, times=1)
    since = len(proxy.operations())
    limiter.delete_entity(f"e-{api}")
    assert sent(proxy, since, "BatchWriteItem") == 2
    with pytest.raises(EntityNotFoundError):
        limiter.get_entity(f"e-{api}")


def defaults_item(body: dict) -> bool:
    return body.get("Key", {}).get("SK", {}).get("S") == schema.DEFAULTS_SK


def set_resource_defaults(limiter, proxy, fault, dynamodb, table_name, api, caplog):
    # A shared item takes sets and removes only, no version: sent again, it leaves what one send does.
    proxy.fail("UpdateItem", fault, times=1, when=defaults_item)
    since = len(proxy.operations())
    limiter.set_resource_defaults(api, [Limit.per_minute("rpm", 7)])
    assert sent(proxy, since, "UpdateItem") == 2
    assert limiter.get_resource_defaults(api) == [Limit.per_minute("rpm", 7)]


def disable(limiter, proxy, fault, dynamodb, table_name, api, caplog):
    # The entity's limits item, conditional on its version like set_limits: sent once, read back.
    proxy.fail("UpdateItem", fault, times=1, when=limits_item)
    since = len(proxy.operations())
    limiter.disable("k", api)
    assert sent(proxy, since, "UpdateItem") == 1
    assert sent(proxy, since, "GetItem") == 1  # the item read back: it landed
    assert limiter.is_disabled("k", api) is True


def tats(dynamodb, table_name, entity_id, resource) -> dict:
    item = dynamodb.get_item(TableName=table_name, Key=schema.bucket_key(entity_id, resource), ConsistentRead=True).get("Item")
    return schema.bucket_tats(item)


def top_up(limiter, proxy, fault, dynamodb, table_name, api, caplog):
    # `tat = if_not_exists(tat, now) - k`: a second send would add the tokens twice. The same top-up on a
    # twin bucket, sent without a fault, is what one application leaves.
    limiter.set_limits("k", LIMITS, resource=api)
    limiter.set_limits("twin", LIMITS, resource=api)
    for entity in ("k", "twin"):
        with limiter.acquire(entity, api, consume={"rpm": 5}):
            pass
    limiter.top_up("twin", api, rpm=2)
    proxy.fail("UpdateItem", fault, times=1, when=key_of("k"))
    since = len(proxy.operations())
    with pytest.raises(WriteOutcomeUnknown):
        limiter.top_up("k", api, rpm=2)
    assert sent(proxy, since, "UpdateItem") == 1
    assert tats(dynamodb, table_name, "k", api) == tats(dynamodb, table_name, "twin", api)
    # The token bucket's own arithmetic, on the test's still clock: 10 - 5 taken + 2 given, once.
    assert limiter.available("k", api)["rpm"] == pytest.approx(7)


def reset(limiter, proxy, fault, dynamodb, table_name, api, caplog):
    with limiter.acquire("k", api, LIMITS, consume={"rpm": 5}):
        pass
    proxy.fail("UpdateItem", fault, times=1, when=key_of("k"))
    since = len(proxy.operations())
    with pytest.raises(WriteOutcomeUnknown):
        limiter.reset("k", api)
    assert sent(proxy, since, "UpdateItem") == 1
    assert tats(dynamodb, table_name, "k", api) == {}  # applied: every limit full
    assert limiter.available("k", api, LIMITS) == {"rpm": 10, "tpm": 1000}  # each at its capacity
    assert counters(dynamodb, table_name, api) == {"rpm": 5000}  # usage stays what was admitted


def set_parent(limiter, proxy, fault, dynamodb, table_name, api, caplog):
    key, proj = f"key-{api}", f"proj-{api}"
    limiter.create_entity(proj)
    limiter.create_entity(key)
    proxy.fail("UpdateItem", fault, times=1, when=lambda body: body.get("Key") == schema.meta_key(key))
    since = len(proxy.operations())
    with pytest.raises(WriteOutcomeUnknown):
        limiter.set_parent(key, proj, cascade=True)
    assert sent(proxy, since, "UpdateItem") == 1
    moved = limiter.get_entity(key)
    assert (moved.parent_id, moved.cascade) == (proj, True)
    assert [child.entity_id for child in limiter.get_children(proj)] == [key]


WRITES = [acquire, adjust, refund, cascade_adjust, create_entity, cascade, set_limits, delete_limits, delete_entity,
          set_resource_defaults, disable, top_up, reset, set_parent]


@pytest.mark.parametrize("path", ["lean", "boto3"])
def test_a_create_entity_that_never_arrived_is_unavailable_and_creates_nothing(make, proxy, api, path):
    """The put's bytes left, the connection was cut before DynamoDB saw them: the record read back is
    missing, so the caller hears that the outcome is unknown (it may still land), not that it exists."""
    limiter = make(lean_hot_path=path == "lean")
    proxy.fail("PutItem", "drop", times=1)
    with pytest.raises(RateLimiterUnavailable, match="the record read back is missing"):
        limiter.create_entity(f"n-{api}")
    with pytest.raises(EntityNotFoundError):
        limiter.get_entity(f"n-{api}")
    assert limiter.create_entity(f"n-{api}").entity_id == f"n-{api}"  # nothing half-written in the way


@pytest.mark.parametrize("path", ["lean", "boto3"])
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("write", WRITES, ids=[w.__name__ for w in WRITES])
def test_a_write_whose_answer_is_lost(write, fault, path, make, proxy, dynamodb, table_name, api, caplog):
    limiter = make(lean_hot_path=path == "lean")
    write(limiter, proxy, fault, dynamodb, table_name, api, caplog)
    assert limiter.unavailable_allowed == {"acquire": 0, "adjust": 0, "refund": 0}


@pytest.mark.parametrize("error", [ResponseStreamingError, IncompleteReadError, ReadTimeoutError, ConnectionClosedError, HTTPClientError])
def test_botocore_never_resends_an_update_after_its_answer_broke_off(make, proxy, dynamodb, table_name, api, error):
    """How botocore reports an answer that broke off while it was read (or never came), on a request that
    did arrive: each is an HTTPClientError, which botocore's standard retries send again. The request is
    sent for real (through the proxy: applied) where botocore would send it, then the error raised there."""
    limiter = make(lean_hot_path=False)
    with limiter.acquire("k", api, LIMITS, consume={"rpm": 1}):
        pass
    transport = getattr(limiter, "limiter", limiter)._open()
    client = getattr(transport, "transport", transport).client
    broken: list[bool] = []

    def send_then_break(request, **_):
        if broken:
            return None  # botocore sends it
        broken.append(True)
        connection = http.client.HTTPConnection(*urlsplit(proxy.url).netloc.split(":"))
        connection.request(request.method, "/", body=request.body, headers=dict(request.headers))
        connection.getresponse().read()
        connection.close()
        raise error(**ERROR_ARGS[error])

    client.meta.events.register("before-send.dynamodb.UpdateItem", send_then_break)
    since = len(proxy.operations())
    with pytest.raises(WriteOutcomeUnknown):
        with limiter.acquire("k", api, LIMITS, consume={"rpm": 1}):
            pytest.fail("the block must not run")
    assert sent(proxy, since, "UpdateItem") == 1
    assert counters(dynamodb, table_name, api) == {"rpm": 2000}


ERROR_ARGS = {
    ResponseStreamingError: {"error": "Connection broken: IncompleteRead(10 bytes read, 40 more expected)"},
    IncompleteReadError: {"actual_bytes": 10, "expected_bytes": 50},
    ReadTimeoutError: {"endpoint_url": "http://127.0.0.1/"},
    ConnectionClosedError: {"endpoint_url": "http://127.0.0.1/"},
    HTTPClientError: {"error": "Connection reset by peer"},
}


# -- the lean path's framing, through a real limiter ---------------------------------------------------------
def test_an_interim_answer_is_not_taken_for_the_answer(make, proxy, dynamodb, table_name, api):
    limiter = make()
    proxy.fail("UpdateItem", "interim", times=2)
    with limiter.acquire("k", api, LIMITS, consume={"rpm": 1}):
        pass
    with limiter.acquire("k", api, LIMITS, consume={"rpm": 1}):
        pass
    assert counters(dynamodb, table_name, api) == {"rpm": 2000}
    assert proxy.operations().count("UpdateItem") == 2


def test_stray_bytes_after_an_answer_never_turn_a_refusal_into_an_admission(make, proxy, dynamodb, table_name, api):
    """A second "success" follows the first acquire's answer on the connection. The next conditional
    write must be refused by DynamoDB (another client took the last token), not answered by the stray."""
    limits = [Limit.per_minute("rpm", 3)]
    limiter, other = make(), make()
    proxy.fail("UpdateItem", "stray", times=1, status=200, payload={"Attributes": {}})
    with limiter.acquire("k", api, limits, consume={"rpm": 1}):
        pass
    with other.acquire("k", api, limits, consume={"rpm": 1.5}):
        pass  # the bucket now holds less than one token; `limiter` still believes two are left
    with pytest.raises(RateLimitExceeded):
        with limiter.acquire("k", api, limits, consume={"rpm": 1}):
            pytest.fail("admitted on a stray answer")
    assert counters(dynamodb, table_name, api) == {"rpm": 2500}


# -- the keep-alive race -------------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("path", ["lean", "boto3"])
def test_a_kept_alive_connection_is_retired_before_the_server_would_close_it(make_limiter, endpoint_url, dynamodb, table_name, api, monkeypatch, path):
    """A server (here with uvicorn's 5 s keep-alive) closes a connection idle that long as the next request
    arrives, unread. Both transports retire connections idle over MAX_IDLE_SECONDS (4 s) first (the lean
    path its own; boto3's pool by closing the client's connections), so the write goes out on a fresh
    connection and is applied, not reported unavailable (nor, under "allow", admitted unchecked).
    Before, on boto3 the write was of unknown outcome although the proxy had dropped it unread."""
    from botocore.config import Config

    clock = Clock()
    import zae_limiter.transport.connections as connections

    monkeypatch.setattr(connections, "monotonic", clock)
    assert connections.MAX_IDLE_SECONDS < 5
    with FaultProxy(endpoint_url, keep_alive=5.0, clock=clock) as proxy:
        config = Config(connect_timeout=1, read_timeout=10, retries={"mode": "standard", "total_max_attempts": 3})
        limiter = make_limiter(endpoint_url=proxy.url, boto_config=config, lean_hot_path=path == "lean")
        with limiter.acquire("k", api, LIMITS, consume={"rpm": 1}):
            pass
        clock.now += 5.0  # idle for the server's whole keep-alive
        with limiter.acquire("k", api, LIMITS, consume={"rpm": 1}):
            pass
        assert proxy.operations("idle-close") == []  # the idle connection was never used
        assert counters(dynamodb, table_name, api) == {"rpm": 2000}
