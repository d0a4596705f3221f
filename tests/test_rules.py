"""Every rule of DESIGN section 5, run against both the sync and the async API (see conftest)."""

from __future__ import annotations

import logging
import math
import types

import pytest

from zae_limiter import (
    EntityExistsError,
    EntityNotFoundError,
    Limit,
    RateLimitExceeded,
    ValidationError,
)
from zae_limiter.core import schema

RPM = Limit.per_minute("rpm", 10)
TPM = Limit.per_minute("tpm", 1_000, burst=2_000)
LIMITS = [RPM, TPM]


def bucket_item(dynamodb, table_name, entity_id, resource="gpt"):
    return dynamodb.get_item(TableName=table_name, Key=schema.bucket_key(entity_id, resource), ConsistentRead=True).get("Item")


def test_never_used_bucket_is_full(limiter):
    assert limiter.available("k", "gpt", LIMITS) == {"rpm": 10, "tpm": 2_000}


def test_acquire_writes_consumption_before_the_block_runs(limiter, dynamodb, table_name):
    with limiter.acquire("k", "gpt", LIMITS, consume={"rpm": 1, "tpm": 500}) as lease:
        item = bucket_item(dynamodb, table_name, "k")
        assert schema.bucket_counters(item) == {"rpm": 1000, "tpm": 500_000}
        assert lease.consumed == {"rpm": 1, "tpm": 500}
    assert limiter.available("k", "gpt", LIMITS) == {"rpm": 9, "tpm": 1_500}


def test_rejection_consumes_nothing_and_reports_every_limit(limiter, clock):
    with limiter.acquire("k", "gpt", LIMITS, consume={"rpm": 1, "tpm": 1_900}):
        pass
    before = limiter.available("k", "gpt", LIMITS)
    with pytest.raises(RateLimitExceeded) as raised:
        with limiter.acquire("k", "gpt", LIMITS, consume={"rpm": 1, "tpm": 200}):
            pytest.fail("the block must not run")
    error = raised.value
    assert limiter.available("k", "gpt", LIMITS) == before  # rpm had room, but nothing was taken
    by_name = {s.name: s for s in error.statuses}
    assert set(by_name) == {"rpm", "tpm"}
    assert by_name["tpm"].exceeded and not by_name["rpm"].exceeded
    assert by_name["tpm"].available == 100 and by_name["tpm"].requested == 200 and by_name["tpm"].capacity == 2000
    # 100 more tpm tokens at 1000/min take 6 s: the wait after which the whole request can succeed.
    assert error.retry_after_seconds == pytest.approx(6.0)
    assert error.retry_after_header == "6"
    body = error.as_dict()
    assert body["retry_after_seconds"] == pytest.approx(6.0)
    assert {l["name"] for l in body["limits"] if l["exceeded"]} == {"tpm"}
    clock.advance(6.0)
    with limiter.acquire("k", "gpt", LIMITS, consume={"rpm": 1, "tpm": 200}):
        pass


def test_retry_after_header_rounds_up(limiter, clock):
    with limiter.acquire("k", "gpt", [RPM], consume={"rpm": 10}):
        pass
    clock.advance(5.5)  # 0.9166 tokens back; the next token arrives in 0.5 s
    with pytest.raises(RateLimitExceeded) as raised:
        with limiter.acquire("k", "gpt", [RPM], consume={"rpm": 1}):
            pass
    assert raised.value.retry_after_seconds == pytest.approx(0.5)
    assert raised.value.retry_after_header == "1"


def test_refill_is_continuous_and_capped(limiter, clock):
    with limiter.acquire("k", "gpt", LIMITS, consume={"rpm": 10, "tpm": 2_000}):
        pass
    assert limiter.available("k", "gpt", LIMITS) == {"rpm": 0, "tpm": 0}
    clock.advance(3.0)
    assert limiter.available("k", "gpt", LIMITS) == pytest.approx({"rpm": 0.5, "tpm": 50})
    clock.advance(57.0)
    assert limiter.available("k", "gpt", LIMITS) == pytest.approx({"rpm": 10, "tpm": 1_000})
    clock.advance(3600)
    assert limiter.available("k", "gpt", LIMITS) == {"rpm": 10, "tpm": 2_000}


def test_refill_over_real_time(make_limiter):
    limiter = make_limiter()  # the real clock
    fast = Limit.per_second("rps", 20)
    with limiter.acquire("k", "gpt", [fast], consume={"rps": 20}):
        pass
    import time

    time.sleep(0.25)
    got = limiter.available("k", "gpt", [fast])["rps"]
    # 0.25 s at 20/s is 5 tokens, and more on a slower machine (the sleep only lasts longer); refill is
    # counted from when the write was sent, so at least 5 are back.
    assert 0.25 * 20 <= got <= 20


def test_time_until_available(limiter, clock):
    assert limiter.time_until_available("k", "gpt", {"rpm": 5}, LIMITS) == 0
    with limiter.acquire("k", "gpt", LIMITS, consume={"rpm": 10}):
        pass
    assert limiter.time_until_available("k", "gpt", {"rpm": 2}, LIMITS) == pytest.approx(12.0)
    clock.advance(12)
    assert limiter.time_until_available("k", "gpt", {"rpm": 2}, LIMITS) == 0


def test_adjust_adds_debt_and_refunds(limiter, dynamodb, table_name):
    with limiter.acquire("k", "gpt", LIMITS, consume={"rpm": 1, "tpm": 500}) as lease:
        lease.adjust(tpm=2_000)  # never rejected: the bucket goes into debt
        assert limiter.available("k", "gpt", LIMITS)["tpm"] == -500
        lease.adjust(tpm=-300)
        assert lease.consumed == {"rpm": 1, "tpm": 2_200}
    assert limiter.available("k", "gpt", LIMITS)["tpm"] == -200
    assert schema.bucket_counters(bucket_item(dynamodb, table_name, "k"))["tpm"] == 2_200_000
    with pytest.raises(RateLimitExceeded):  # a bucket in debt refuses even a call that takes none of it
        with limiter.acquire("k", "gpt", LIMITS, consume={"rpm": 1}):
            pass


def test_adjust_validation(limiter):
    with limiter.acquire("k", "gpt", LIMITS, consume={"rpm": 1, "tpm": 100}) as lease:
        with pytest.raises(ValidationError, match=r"adjust\['xpm'\]"):
            lease.adjust(xpm=1)
        with pytest.raises(ValidationError, match=r"adjust\['tpm'\].*finite"):
            lease.adjust(tpm=math.inf)
        with pytest.raises(ValidationError, match="more than the lease took"):
            lease.adjust(tpm=-101)
        assert lease.consumed == {"rpm": 1, "tpm": 100}


def test_exception_refunds_everything_and_propagates_unchanged(limiter, dynamodb, table_name):
    boom = RuntimeError("upstream failed")
    with pytest.raises(RuntimeError) as raised:
        with limiter.acquire("k", "gpt", LIMITS, consume={"rpm": 1, "tpm": 500}) as lease:
            lease.adjust(tpm=300)
            raise boom
    assert raised.value is boom
    assert limiter.available("k", "gpt", LIMITS) == {"rpm": 10, "tpm": 2_000}
    # The counters moved by exactly the consumption and then the refund: usage nets to zero.
    assert schema.bucket_counters(bucket_item(dynamodb, table_name, "k")) == {"rpm": 0, "tpm": 0}


def test_refund_failure_is_logged_and_never_masks_the_error(limiter, caplog, monkeypatch):
    from zae_limiter.state.limiter_core import LimiterCore

    def broken_refund(self, lease):
        raise OSError("refund lost")
        yield  # pragma: no cover - makes this a generator like the real flow

    boom = KeyError("original")
    monkeypatch.setattr(LimiterCore, "refund", broken_refund)
    with caplog.at_level(logging.ERROR, logger="zae_limiter"):
        with pytest.raises(KeyError) as raised:
            with limiter.acquire("k", "gpt", LIMITS, consume={"rpm": 1}):
                raise boom
    assert raised.value is boom
    assert "refund of a lease on k/gpt failed" in caplog.text


def test_limit_precedence(limiter):
    arg = [Limit.per_minute("rpm", 1)]

    def capacity():
        return limiter.available("k", "gpt", arg)["rpm"]

    assert capacity() == 1  # nothing stored: the argument
    limiter.set_system_defaults([Limit.per_minute("rpm", 2)])
    assert capacity() == 2
    limiter.set_resource_defaults("gpt", [Limit.per_minute("rpm", 3)])
    assert capacity() == 3
    limiter.set_limits("k", [Limit.per_minute("rpm", 4)])  # the entity's _default_
    assert capacity() == 4
    limiter.set_limits("k", [Limit.per_minute("rpm", 5)], resource="gpt")
    assert capacity() == 5
    assert limiter.available("k", "other", arg)["rpm"] == 4
    limiter.delete_limits("k", resource="gpt")
    assert capacity() == 4
    assert limiter.get_limits("k") == [Limit.per_minute("rpm", 4)]
    assert limiter.get_resource_defaults("gpt") == [Limit.per_minute("rpm", 3)]
    assert limiter.get_system_defaults() == [Limit.per_minute("rpm", 2)]
    limiter.delete_limits("k")
    limiter.delete_resource_defaults("gpt")
    limiter.delete_system_defaults()
    assert capacity() == 1
    with pytest.raises(ValidationError, match="no limits for entity 'k'"):
        limiter.available("k", "gpt")


def test_the_limits_argument_is_part_of_what_a_limiter_remembers(limiter):
    """The levels an acquire resolves to are cached per (entity, resource, limits passed): another
    `limits=` for the same entity must not be answered from the first one's entry."""
    assert limiter.available("k", "gpt", [Limit.per_minute("rpm", 1)])["rpm"] == 1
    assert limiter.available("k", "gpt", [Limit.per_minute("rpm", 9)])["rpm"] == 9
    assert limiter.available("k", "gpt", [Limit.per_minute("rpm", 9), Limit.per_minute("tpm", 5)]) == {"rpm": 9, "tpm": 5}
    with limiter.acquire("k", "gpt", [Limit.per_minute("rpm", 2)], consume=types.MappingProxyType({"rpm": 2})):
        pass
    assert limiter.available("k", "gpt", [Limit.per_minute("rpm", 2)])["rpm"] == 0


def test_stored_limits_apply_to_other_limiters_after_the_cache_expires(make_limiter):
    writer = make_limiter()
    reader = make_limiter(config_cache_seconds=0)
    writer.set_limits("k", [Limit.per_minute("rpm", 7)])
    assert reader.available("k", "gpt")["rpm"] == 7


@pytest.mark.parametrize(
    "entity_id, resource, consume, field",
    [
        ("k", "gpt", {"xpm": 1}, "consume['xpm']"),
        ("k", "gpt", {"rpm": -1}, "consume['rpm']"),
        ("k", "gpt", {"rpm": math.nan}, "consume['rpm']"),
        ("k", "gpt", {"rpm": math.inf}, "consume['rpm']"),
        ("k", "gpt", {"rpm": "1"}, "consume['rpm']"),
        ("k", "gpt", {"rpm": True}, "consume['rpm']"),  # a bool is not an amount
        ("k", "gpt", {"rpm": 10**16}, "consume['rpm']"),
        ("k", "gpt", {"rpm": 10**400}, "consume['rpm']"),  # beyond any float
        ("k", "gpt", {"rpm": 11}, "consume['rpm']"),  # larger than the capacity: could never succeed
        ("k", "gpt", {}, "consume"),
        ("", "gpt", {"rpm": 1}, "entity_id"),
        ("k" * 257, "gpt", {"rpm": 1}, "entity_id"),
        ("a#b", "gpt", {"rpm": 1}, "entity_id"),
        ("a\x00b", "gpt", {"rpm": 1}, "entity_id"),
        ("k", "gp#t", {"rpm": 1}, "resource"),
        ("k", "gpt\n", {"rpm": 1}, "resource"),
        ("k", 7, {"rpm": 1}, "resource"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(limiter, dynamodb, table_name, entity_id, resource, consume, field):
    with pytest.raises(ValidationError) as raised:
        with limiter.acquire(entity_id, resource, LIMITS, consume=consume):
            pytest.fail("the block must not run")
    assert raised.value.field == field
    assert isinstance(raised.value, ValueError)
    assert dynamodb.scan(TableName=table_name)["Count"] == 0


def test_bad_limits_argument(limiter):
    with pytest.raises(ValidationError, match="appears twice"):
        limiter.available("k", "gpt", [RPM, RPM])
    with pytest.raises(ValidationError, match="expected Limit objects"):
        limiter.available("k", "gpt", ["rpm=1/min"])


def test_entities(limiter):
    project = limiter.create_entity("proj", name="Project", metadata={"tier": "gold"})
    assert project.created_at is not None
    assert limiter.get_entity("proj") == project
    with pytest.raises(EntityExistsError):
        limiter.create_entity("proj")
    with pytest.raises(EntityNotFoundError):
        limiter.create_entity("key", parent_id="nobody")
    with pytest.raises(ValidationError, match="cascade"):
        limiter.create_entity("key", cascade=True)
    limiter.create_entity("key-b", parent_id="proj")
    limiter.create_entity("key-a", parent_id="proj", cascade=True)
    assert [e.entity_id for e in limiter.get_children("proj")] == ["key-a", "key-b"]
    assert limiter.get_children("key-a") == []
    limiter.set_limits("key-b", [RPM])
    with limiter.acquire("key-b", "gpt", consume={"rpm": 1}):
        pass
    limiter.delete_entity("key-b")
    with pytest.raises(EntityNotFoundError):
        limiter.get_entity("key-b")
    assert limiter.get_limits("key-b") == []
    assert limiter.available("key-b", "gpt", [RPM]) == {"rpm": 10}  # its bucket went too
    with pytest.raises(EntityNotFoundError):
        limiter.delete_entity("key-b")
    with pytest.raises(ValidationError, match="metadata"):
        limiter.create_entity("m", metadata={"k": 1})


class TestCascade:
    @pytest.fixture
    def family(self, limiter):
        limiter.create_entity("proj")
        limiter.create_entity("key", parent_id="proj", cascade=True)
        limiter.create_entity("solo", parent_id="proj")  # no cascade
        limiter.set_limits("proj", [Limit.per_minute("rpm", 3)])
        limiter.set_limits("key", [Limit.per_minute("rpm", 10), Limit.per_minute("tpm", 100)])
        limiter.set_limits("solo", [Limit.per_minute("rpm", 10)])
        return limiter

    def test_consumption_is_taken_from_the_parent(self, family):
        with family.acquire("key", "gpt", consume={"rpm": 2, "tpm": 10}):
            pass
        assert family.available("key", "gpt")["rpm"] == 8
        assert family.available("proj", "gpt")["rpm"] == 1
        with family.acquire("solo", "gpt", consume={"rpm": 2}):
            pass
        assert family.available("proj", "gpt")["rpm"] == 1  # no cascade, no parent consumption

    def test_parent_rejection_consumes_nothing_anywhere(self, family):
        with family.acquire("key", "gpt", consume={"rpm": 3}):
            pass
        with pytest.raises(RateLimitExceeded) as raised:
            with family.acquire("key", "gpt", consume={"rpm": 1, "tpm": 5}):
                pass
        assert [s.entity_id for s in raised.value.exceeded] == ["proj"]
        assert family.available("key", "gpt") == {"rpm": 7, "tpm": 100}

    def test_child_rejection_consumes_nothing_at_the_parent(self, family):
        with pytest.raises(RateLimitExceeded):
            with family.acquire("key", "gpt", consume={"rpm": 1, "tpm": 100}) as lease:
                lease.adjust(tpm=50)  # debt at the child
                raise RateLimitExceeded([])
        with family.acquire("key", "gpt", consume={"rpm": 1, "tpm": 100}) as lease:
            lease.adjust(tpm=1)
        assert family.available("proj", "gpt")["rpm"] == 2
        with pytest.raises(RateLimitExceeded) as raised:
            with family.acquire("key", "gpt", consume={"rpm": 1}):
                pass
        assert [s.entity_id for s in raised.value.exceeded] == ["key"]
        assert family.available("proj", "gpt")["rpm"] == 2

    def test_refund_and_adjust_reach_the_parent(self, family):
        with pytest.raises(ZeroDivisionError):
            with family.acquire("key", "gpt", consume={"rpm": 2}) as lease:
                lease.adjust(rpm=1)
                assert family.available("proj", "gpt")["rpm"] == 0
                1 / 0
        assert family.available("proj", "gpt")["rpm"] == 3
        assert family.available("key", "gpt")["rpm"] == 10
        assert family.time_until_available("key", "gpt", {"rpm": 3}) == 0


@pytest.mark.parametrize(
    "consume",
    [{"rpm": 0}, {"rpm": 0, "tpm": 0}, {"rpm": 1, "tpm": 0}],  # below 0.001 is refused: test_input_limits.py
    ids=["zero", "all-zero", "one-zero"],
)
def test_zero_consumption_is_a_valid_acquire_on_fresh_idle_and_busy_buckets(limiter, clock, consume):
    for _ in range(2):  # a fresh bucket, then one this client knows
        with limiter.acquire("k", "gpt", LIMITS, consume=consume):
            pass
    with limiter.acquire("k", "gpt", LIMITS, consume={"rpm": 5}):  # busy now
        pass
    with limiter.acquire("k", "gpt", LIMITS, consume=consume):
        pass
    clock.advance(3600)  # idle again
    with limiter.acquire("k", "gpt", LIMITS, consume=consume):
        pass
    expected_rpm = 10 - (1 if consume.get("rpm") == 1 else 0)
    assert limiter.available("k", "gpt", LIMITS)["rpm"] == expected_rpm
