"""The quota model (DESIGN section 15) on both APIs: calendar quotas, soft limits, disable, `also`,
set_parent, reset, top_up and scheduled limits. Expected values come from the calendar and a plain
token bucket, worked out by hand in each test."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from conftest import RequestCounter
from zae_limiter import EntityNotFoundError, Limit, RateLimitExceeded, ResourceDisabled, ValidationError
from zae_limiter.core import schema
from zae_limiter.core.limits import parse_limits

NANOS = 10**9


def at(*fields: int) -> int:
    """Nanoseconds since the epoch of a UTC date and time."""
    return int(datetime(*fields, tzinfo=timezone.utc).timestamp()) * NANOS


def take(limiter, limits, consume, entity="k", resource="gpt", **kwargs) -> bool:
    try:
        with limiter.acquire(entity, resource, limits, consume=consume, **kwargs):
            return True
    except RateLimitExceeded:
        return False


def enabled(limiter, limits, **kwargs) -> bool:
    """Whether an acquire of 1 rpm is admitted (True) or refused as disabled (False)."""
    try:
        return take(limiter, limits, {"rpm": 1}, **kwargs)
    except ResourceDisabled:
        return False


# -- calendar quotas ------------------------------------------------------------------------------
def test_a_daily_quota_is_full_at_each_utc_midnight_and_never_refills_between(limiter, clock):
    daily = [Limit.quota("daily", 3, every="day")]
    clock.now = at(2027, 5, 12, 9, 15)
    assert [take(limiter, daily, {"daily": 1}) for _ in range(3)] == [True, True, True]
    clock.now = at(2027, 5, 12, 23, 0)  # 14 hours later: a rate limit would have refilled; a quota does not
    with pytest.raises(RateLimitExceeded) as refused:
        with limiter.acquire("k", "gpt", daily, consume={"daily": 1}):
            pass
    status = refused.value.statuses[0]
    assert status.resets_at == datetime(2027, 5, 13, tzinfo=timezone.utc)
    assert refused.value.retry_after_seconds == pytest.approx(3600)  # to the boundary
    assert refused.value.as_dict()["limits"][0]["resets_at"] == "2027-05-13T00:00:00+00:00"
    clock.now = at(2027, 5, 13, 0, 0)
    assert limiter.available("k", "gpt", daily) == {"daily": 3}
    assert [take(limiter, daily, {"daily": 1}) for _ in range(4)] == [True, True, True, False]


def test_a_monthly_quota_follows_month_lengths(limiter, clock):
    monthly = [Limit.quota("budget", 2, every="month")]
    clock.now = at(2028, 1, 31, 23, 59)
    assert [take(limiter, monthly, {"budget": 1}) for _ in range(3)] == [True, True, False]
    clock.now = at(2028, 2, 1, 0, 0)  # February: full again
    assert take(limiter, monthly, {"budget": 2})
    clock.now = at(2028, 2, 29, 12, 0)  # a leap year: still February, still spent
    with pytest.raises(RateLimitExceeded) as refused:
        with limiter.acquire("k", "gpt", monthly, consume={"budget": 1}):
            pass
    assert refused.value.statuses[0].resets_at == datetime(2028, 3, 1, tzinfo=timezone.utc)
    assert refused.value.retry_after_seconds == pytest.approx(12 * 3600)


def test_a_daily_quota_in_a_time_zone_crosses_a_daylight_saving_change(limiter, clock):
    """Europe/Paris moves from UTC+1 to UTC+2 at 01:00 UTC on Sunday 28 March 2027: that local day lasts
    23 hours. Local midnight on the 28th is 23:00 UTC on the 27th; on the 29th it is 22:00 UTC on the 28th."""
    paris = [Limit.quota("daily", 1, every="day", tz="Europe/Paris")]
    clock.now = at(2027, 3, 27, 23, 30)  # 00:30 in Paris on the 28th
    assert take(limiter, paris, {"daily": 1})
    with pytest.raises(RateLimitExceeded) as refused:
        with limiter.acquire("k", "gpt", paris, consume={"daily": 1}):
            pass
    assert refused.value.statuses[0].resets_at == datetime(2027, 3, 28, 22, 0, tzinfo=timezone.utc)
    assert refused.value.retry_after_seconds == pytest.approx(22.5 * 3600)
    clock.now = at(2027, 3, 28, 21, 59)
    assert not take(limiter, paris, {"daily": 1})
    clock.now = at(2027, 3, 28, 22, 0)
    assert take(limiter, paris, {"daily": 1})


def test_a_weekly_quota_starts_on_monday(limiter, clock):
    weekly = [Limit.quota("weekly", 1, every="week")]
    clock.now = at(2027, 6, 13, 23, 0)  # a Sunday
    assert take(limiter, weekly, {"weekly": 1})
    assert not take(limiter, weekly, {"weekly": 1})
    clock.now = at(2027, 6, 14, 0, 0)  # Monday
    assert take(limiter, weekly, {"weekly": 1})


def test_quotas_mix_with_rate_limits_in_one_item_and_one_request(limiter, clock, dynamodb, table_name):
    limits = [Limit.per_minute("rpm", 10), Limit.quota("daily", 1_000, every="day")]
    clock.now = at(2027, 5, 12, 9, 0)
    with limiter.acquire("k", "gpt", limits, consume={"rpm": 1, "daily": 100}):
        pass
    counter = RequestCounter(limiter)
    with limiter.acquire("k", "gpt", limits, consume={"rpm": 1, "daily": 100}):
        pass
    assert counter.calls == ["UpdateItem"]
    item = dynamodb.get_item(TableName=table_name, Key=schema.bucket_key("k", "gpt"), ConsistentRead=True)["Item"]
    assert schema.bucket_counters(item) == {"rpm": 2_000, "daily": 200_000}  # what the aggregator reads
    assert limiter.available("k", "gpt", limits) == {"rpm": 8, "daily": 800}


def test_adjust_and_refund_on_a_quota(limiter, clock):
    daily = [Limit.quota("daily", 10, every="day")]
    clock.now = at(2027, 5, 12, 9, 0)
    with pytest.raises(KeyError):
        with limiter.acquire("k", "gpt", daily, consume={"daily": 2}) as lease:
            lease.adjust(daily=5)  # 7 used
            assert limiter.available("k", "gpt", daily) == {"daily": 3}
            lease.adjust(daily=8)  # 15 used: in debt until the boundary
            assert limiter.available("k", "gpt", daily) == {"daily": -5}
            raise KeyError("the work failed")
    assert limiter.available("k", "gpt", daily) == {"daily": 10}  # all 15 given back
    with limiter.acquire("k", "gpt", daily, consume={"daily": 10}) as lease:
        clock.now = at(2027, 5, 13, 0, 0)  # a new day: full, whatever yesterday took
        lease.adjust(daily=-4)  # a give-back never goes past the capacity
    assert limiter.available("k", "gpt", daily) == {"daily": 10}


def test_quotas_and_soft_limits_are_stored_parsed_and_printed(limiter):
    limits = parse_limits("soft rpm=100/min:150, budget=1000000 per month in Europe/Paris, soft daily=5 per day")
    assert limits == [
        Limit.per_minute("rpm", 100, burst=150, soft=True),
        Limit.quota("budget", 1_000_000, every="month", tz="Europe/Paris"),
        Limit.quota("daily", 5, every="day", soft=True),
    ]
    limiter.set_limits("k", limits, resource="gpt")
    stored = limiter.get_limits("k", "gpt")
    assert sorted(stored, key=lambda l: l.name) == sorted(limits, key=lambda l: l.name)
    assert parse_limits(",".join(limit.to_text() for limit in limits)) == limits


@pytest.mark.parametrize("text, field", [
    ("q=5 per fortnight", "every"),
    ("q=5 per day in Mars/Olympus", "tz"),
    ("q=-5 per day", "amount"),
])
def test_bad_quota_text_names_the_field(text, field):
    with pytest.raises(ValidationError) as refused:
        parse_limits(text)
    assert field in refused.value.field or field in str(refused.value)


def test_bad_quota_arguments():
    with pytest.raises(ValidationError, match="every"):
        Limit.quota("q", 5, every="year")
    with pytest.raises(ValidationError, match="tz"):
        Limit.quota("q", 5, tz="Nowhere/Else")
    with pytest.raises(ValidationError, match="resource"):
        Limit.per_minute("resource", 5)  # reserved: lease.adjust(resource=...) names a resource


# -- soft limits ----------------------------------------------------------------------------------
def test_a_soft_limit_meters_but_never_refuses(limiter, clock):
    limits = [Limit.per_minute("rpm", 100), Limit.per_minute("shadow", 2, soft=True)]
    with limiter.acquire("warm", "gpt", limits, consume={"rpm": 1, "shadow": 1}):
        pass
    counter = RequestCounter(limiter)
    with limiter.acquire("warm", "gpt", limits, consume={"rpm": 1, "shadow": 1}):
        pass
    assert counter.calls == ["UpdateItem"]  # warm, with a soft limit: one request, as without
    overdrawn = []
    for _ in range(4):
        with limiter.acquire("k", "gpt", limits, consume={"rpm": 1, "shadow": 1}) as lease:
            overdrawn.append(lease.overdrawn)
    assert overdrawn == [[], [], ["shadow"], ["shadow"]]
    assert limiter.available("k", "gpt", limits) == {"rpm": 96, "shadow": -2}  # metered into debt
    assert limiter.stats.snapshot()["soft_overdraws"] == {"shadow": 2}
    with limiter.acquire("k", "gpt", limits, consume={"rpm": 1}) as lease:  # not taken from, but in debt
        assert lease.overdrawn == ["shadow"]
    with limiter.acquire("k", "gpt", limits, consume={"rpm": 1, "shadow": 5}) as lease:  # beyond its capacity
        assert lease.overdrawn == ["shadow"]


def test_a_rejection_still_reports_the_soft_limits(limiter):
    limits = [Limit.per_minute("rpm", 1), Limit.per_minute("shadow", 1, soft=True)]
    assert take(limiter, limits, {"rpm": 1, "shadow": 1})
    with pytest.raises(RateLimitExceeded) as refused:
        with limiter.acquire("k", "gpt", limits, consume={"rpm": 1, "shadow": 1}):
            pass
    by_name = {s.name: s for s in refused.value.statuses}
    assert by_name["shadow"].soft and by_name["shadow"].exceeded
    assert [s.name for s in refused.value.exceeded] == ["rpm"]  # only the hard limit refused
    assert refused.value.retry_after_seconds == pytest.approx(60)


def test_soft_limits_of_a_cascade_parent_are_reported_from_the_transaction(limiter):
    limiter.create_entity("org")
    limiter.set_limits("org", [Limit.per_minute("tpm", 1_000, soft=True)], resource="gpt")
    limiter.create_entity("key", parent_id="org", cascade=True)
    key_limits = [Limit.per_minute("tpm", 10_000)]
    seen = []
    for _ in range(3):
        with limiter.acquire("key", "gpt", key_limits, consume={"tpm": 400}) as lease:
            seen.append(lease.overdrawn)
    assert seen == [[], [], ["tpm"]]  # the third takes the org to -200: it would have refused
    assert limiter.available("org", "gpt") == {"tpm": -200}
    assert limiter.available("key", "gpt", key_limits) == {"tpm": 8_800}


# -- disable ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("scope, args", [
    ("entity", {"entity_id": "k"}),
    ("resource", {"resource": "gpt"}),
    ("entity_resource", {"entity_id": "k", "resource": "gpt"}),
])
def test_disable_refuses_with_403_and_writes_nothing(limiter, dynamodb, table_name, scope, args):
    rpm = [Limit.per_minute("rpm", 10)]
    limiter.disable(**args)
    assert limiter.is_disabled(**args)
    with pytest.raises(ResourceDisabled) as refused:
        with limiter.acquire("k", "gpt", rpm, consume={"rpm": 1}):
            pytest.fail("the block must not run")
    assert refused.value.scope == scope and refused.value.status_code == 403
    assert refused.value.as_dict()["error"] == "resource_disabled"
    assert "Item" not in dynamodb.get_item(TableName=table_name, Key=schema.bucket_key("k", "gpt"))
    assert enabled(limiter, rpm, resource="other") == (scope != "entity")
    assert enabled(limiter, rpm, entity="k2") == (scope != "resource")
    limiter.enable(**args)  # seen at once by the limiter that changed it
    assert not limiter.is_disabled(**args)
    assert take(limiter, rpm, {"rpm": 1})


def test_disable_keeps_stored_limits_and_enable_keeps_them_too(limiter):
    limiter.set_resource_defaults("gpt", [Limit.per_minute("rpm", 3)])
    limiter.disable(resource="gpt")
    limiter.set_resource_defaults("gpt", [Limit.per_minute("rpm", 4)])  # setting limits keeps the flag
    assert limiter.is_disabled(resource="gpt")
    limiter.enable(resource="gpt")
    assert limiter.get_resource_defaults("gpt") == [Limit.per_minute("rpm", 4)]
    limiter.disable(resource="gpt")
    limiter.delete_resource_defaults("gpt")  # deleting the limits keeps the flag
    assert limiter.is_disabled(resource="gpt")


def test_a_cascading_child_of_a_disabled_parent_is_refused(limiter):
    limiter.create_entity("org")
    limiter.create_entity("key", parent_id="org", cascade=True)
    limiter.create_entity("loner", parent_id="org")  # no cascade: the parent's flags do not apply
    limiter.disable(entity_id="org")
    rpm = [Limit.per_minute("rpm", 10)]
    with pytest.raises(ResourceDisabled) as refused:
        with limiter.acquire("key", "gpt", rpm, consume={"rpm": 1}):
            pass
    assert refused.value.entity_id == "org"
    assert take(limiter, rpm, {"rpm": 1}, entity="loner")


def test_other_limiters_see_a_disable_when_their_cache_expires(make_limiter):
    import time

    admin, worker = make_limiter(), make_limiter(config_cache_seconds=0.2)
    rpm = [Limit.per_minute("rpm", 10)]
    assert take(worker, rpm, {"rpm": 1})
    admin.disable(entity_id="k")
    time.sleep(0.25)
    with pytest.raises(ResourceDisabled):
        with worker.acquire("k", "gpt", rpm, consume={"rpm": 1}):
            pass


def test_disable_without_a_target_is_bad_input(limiter):
    with pytest.raises(ValidationError, match="entity"):
        limiter.disable()


# -- also: several resources in one lease ---------------------------------------------------------
def test_also_takes_from_several_resources_all_or_nothing(limiter):
    chat, embed = [Limit.per_minute("rpm", 10), Limit.per_minute("tpm", 1_000)], [Limit.per_minute("rpm", 2)]
    limiter.set_resource_defaults("embeddings", embed)
    counter = RequestCounter(limiter)
    with limiter.acquire("k", "chat", chat, consume={"rpm": 1, "tpm": 100}, also={"embeddings": {"rpm": 2}}) as lease:
        assert lease.resources == ("chat", "embeddings")
        assert lease.consumed_in("embeddings") == {"rpm": 2}
        lease.adjust(tpm=50)
        lease.adjust(resource="embeddings", rpm=-1)
    assert "TransactWriteItems" in counter.calls
    assert limiter.available("k", "chat", chat) == {"rpm": 9, "tpm": 850}
    assert limiter.available("k", "embeddings") == {"rpm": 1}
    with pytest.raises(RateLimitExceeded) as refused:  # embeddings lacks: nothing taken from chat either
        with limiter.acquire("k", "chat", chat, consume={"rpm": 1}, also={"embeddings": {"rpm": 2}}):
            pass
    assert {(s.resource, s.name) for s in refused.value.exceeded} == {("embeddings", "rpm")}
    assert limiter.available("k", "chat", chat) == {"rpm": 9, "tpm": 850}
    with pytest.raises(ZeroDivisionError):
        with limiter.acquire("k", "chat", chat, consume={"rpm": 1}, also={"embeddings": {"rpm": 1}}):
            1 / 0
    assert limiter.available("k", "chat", chat) == {"rpm": 9, "tpm": 850}  # refunded whole
    assert limiter.available("k", "embeddings") == {"rpm": 1}


def test_bad_also(limiter):
    rpm = [Limit.per_minute("rpm", 10)]
    with pytest.raises(ValidationError, match="own resource"):
        with limiter.acquire("k", "chat", rpm, consume={"rpm": 1}, also={"chat": {"rpm": 1}}):
            pass
    with pytest.raises(ValidationError) as refused:
        with limiter.acquire("k", "chat", rpm, consume={"rpm": 1}, also={f"r{i}": {"rpm": 1} for i in range(100)}):
            pass
    assert refused.value.field == "also" and "100" in str(refused.value)
    with limiter.acquire("k", "chat", rpm, consume={"rpm": 1}, also={"b": {"rpm": 1}}) as lease:
        with pytest.raises(ValidationError, match="resource"):
            lease.adjust(resource="nowhere", rpm=1)


# -- set_parent, reset, top_up -------------------------------------------------------------------
def test_set_parent_moves_an_entity_and_refuses_cycles(limiter):
    for entity in ("a", "b", "c"):
        limiter.create_entity(entity)
    limiter.set_parent("b", "a", cascade=True)
    limiter.set_parent("c", "b")
    assert [e.entity_id for e in limiter.get_children("a")] == ["b"]
    assert limiter.get_entity("b").cascade and not limiter.get_entity("c").cascade
    with pytest.raises(ValidationError) as refused:
        limiter.set_parent("a", "c")  # c is under b, under a
    assert refused.value.field == "parent_id"
    with pytest.raises(ValidationError):
        limiter.set_parent("a", "a")
    with pytest.raises(EntityNotFoundError):
        limiter.set_parent("nobody", "a")
    moved = limiter.set_parent("b", None)
    assert moved.parent_id is None and not moved.cascade
    assert limiter.get_children("a") == []


def test_moving_a_child_moves_where_its_acquires_cascade(limiter):
    tpm = [Limit.per_minute("tpm", 1_000)]
    for org in ("org1", "org2"):
        limiter.create_entity(org)
        limiter.set_limits(org, tpm, resource="gpt")
    limiter.create_entity("key", parent_id="org1", cascade=True)
    with pytest.raises(KeyError):
        with limiter.acquire("key", "gpt", tpm, consume={"tpm": 300}):
            limiter.set_parent("key", "org2")  # moved while the lease is held...
            assert take(limiter, tpm, {"tpm": 100}, entity="key")  # ...new acquires go to org2 at once
            raise KeyError("the work failed")  # ...and the refund goes back where the tokens came from
    assert limiter.available("org1", "gpt") == {"tpm": 1_000}
    assert limiter.available("org2", "gpt") == {"tpm": 900}


def test_reset_fills_a_bucket_and_keeps_the_usage_counters(limiter, clock, dynamodb, table_name):
    limits = [Limit.per_minute("rpm", 10), Limit.quota("daily", 5)]
    clock.now = at(2027, 5, 12, 9, 0)
    assert take(limiter, limits, {"rpm": 10, "daily": 5})
    limiter.reset("k", "gpt")
    assert limiter.available("k", "gpt", limits) == {"rpm": 10, "daily": 5}
    assert take(limiter, limits, {"rpm": 10, "daily": 5})
    item = dynamodb.get_item(TableName=table_name, Key=schema.bucket_key("k", "gpt"), ConsistentRead=True)["Item"]
    assert schema.bucket_counters(item) == {"rpm": 20_000, "daily": 10_000}  # both admissions counted
    limiter.reset("never-used", "gpt")  # nothing to fill: nothing written


def test_top_up_adds_tokens_capped_at_capacity(limiter, clock):
    limiter.set_limits("k", [Limit.per_minute("rpm", 60), Limit.quota("daily", 10)], resource="gpt")
    clock.now = at(2027, 5, 12, 9, 0)
    assert take(limiter, None, {"rpm": 50, "daily": 9})
    limiter.top_up("k", "gpt", rpm=20, daily=4)
    assert limiter.available("k", "gpt") == {"rpm": 30, "daily": 5}
    limiter.top_up("k", "gpt", rpm=100)
    assert limiter.available("k", "gpt")["rpm"] == 60  # capped
    with pytest.raises(ValidationError):
        limiter.top_up("k", "gpt", nope=1)
    with pytest.raises(ValidationError):
        limiter.top_up("k", "gpt", rpm=-1)


# -- scheduled limits ----------------------------------------------------------------------------
def test_scheduled_limits_take_effect_at_each_cron_time(limiter, clock):
    clock.now = at(2027, 6, 14, 8, 59)  # a Monday
    limiter.set_limits("k", [Limit.per_minute("rpm", 1)], resource="gpt", schedule=[
        ("0 9 * * MON-FRI", [Limit.per_minute("rpm", 100)]),
        ("0 18 * * MON-FRI", [Limit.per_minute("rpm", 10)]),
    ])
    assert [take(limiter, None, {"rpm": 1}) for _ in range(2)] == [True, False]  # its own limits until 09:00
    clock.now = at(2027, 6, 14, 9, 0)  # the cached configuration expires at the change
    assert limiter.available("k", "gpt") == {"rpm": 100}
    clock.now = at(2027, 6, 14, 18, 30)
    assert limiter.available("k", "gpt") == {"rpm": 10}
    clock.now = at(2027, 6, 19, 12, 0)  # Saturday: Friday 18:00's entry is the latest past
    assert limiter.available("k", "gpt") == {"rpm": 10}
    assert limiter.get_schedule("k", "gpt") == [
        ("0 9 * * MON-FRI", [Limit.per_minute("rpm", 100)]),
        ("0 18 * * MON-FRI", [Limit.per_minute("rpm", 10)]),
    ]
    limiter.set_limits("k", [Limit.per_minute("rpm", 7)], resource="gpt")  # no schedule: removed
    assert limiter.get_schedule("k", "gpt") == [] and limiter.available("k", "gpt") == {"rpm": 7}


def test_schedules_on_resource_and_system_defaults(limiter, clock):
    clock.now = at(2027, 6, 14, 12, 0)
    limiter.set_system_defaults([Limit.per_minute("rpm", 5)], schedule=[("0 13 * * *", [Limit.per_minute("rpm", 50)])])
    limiter.set_resource_defaults("gpt", [Limit.per_minute("tpm", 5)], schedule=[("30 12 * * *", [Limit.per_minute("tpm", 9)])])
    assert limiter.available("k", "other") == {"rpm": 5} and limiter.available("k", "gpt") == {"tpm": 5}
    clock.now = at(2027, 6, 14, 13, 0)
    assert limiter.available("k", "other") == {"rpm": 50} and limiter.available("k", "gpt") == {"tpm": 9}
    assert limiter.get_schedule() == [("0 13 * * *", [Limit.per_minute("rpm", 50)])]
    assert limiter.get_schedule(resource="gpt") == [("30 12 * * *", [Limit.per_minute("tpm", 9)])]


@pytest.mark.parametrize("schedule, field", [
    ([("61 * * * *", [Limit.per_minute("rpm", 1)])], "schedule[0]"),
    ([("0 9 * *", [Limit.per_minute("rpm", 1)])], "schedule[0]"),
    ([("0 9 * * *", [])], "schedule[0] limits"),
    ([("0 9 * * *", [Limit.per_minute("rpm", 1)]), ("0 9 * * MON", [Limit.per_minute("rpm", 2)])], "schedule[1]"),
    ("0 9 * * *", "schedule"),
])
def test_bad_schedules_name_the_entry_and_write_nothing(limiter, schedule, field):
    with pytest.raises(ValidationError) as refused:
        limiter.set_limits("k", [Limit.per_minute("rpm", 1)], resource="gpt", schedule=schedule)
    assert refused.value.field == field
    assert limiter.get_limits("k", "gpt") == []


def test_without_the_schedules_extra_a_schedule_is_a_one_line_error(limiter, monkeypatch):
    import sys

    from zae_limiter.core.schedules import MISSING_EXTRA, ScheduleUnavailable

    monkeypatch.setitem(sys.modules, "croniter", None)  # as if not installed: `import croniter` fails
    with pytest.raises(ScheduleUnavailable) as missing:
        limiter.set_limits("k", [Limit.per_minute("rpm", 1)], resource="gpt",
                           schedule=[("0 9 * * *", [Limit.per_minute("rpm", 2)])])
    assert str(missing.value) == MISSING_EXTRA and "zae-limiter[schedules]" in MISSING_EXTRA
    limiter.set_limits("k", [Limit.per_minute("rpm", 1)], resource="gpt")  # plain limits need nothing more
