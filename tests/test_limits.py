"""Limit construction, validation and the compact syntax."""

import dataclasses
import math

import pytest

from zae_limiter import Limit, ValidationError, parse_limits
from zae_limiter.core.limits import format_limits


def test_per_period_constructors():
    assert Limit.per_second("a", 5) == Limit("a", 5, 5, 1)
    assert Limit.per_minute("a", 5, burst=20) == Limit("a", 20, 5, 60)
    assert Limit.per_hour("a", 5).refill_period_seconds == 3600
    assert Limit.per_day("a", 5).refill_period_seconds == 86400


def test_integer_units_are_derived_once_and_follow_replace():
    limit = Limit("tpm", 50_000, 10_000, 60)
    assert (limit.capacity_milli, limit.refill_milli, limit.period_ns) == (50_000_000, 10_000_000, 60 * 10**9)
    assert limit.tau_ns == 300 * 10**9  # the whole capacity stands for five minutes of refill
    smaller = dataclasses.replace(limit, capacity=1.5)
    assert (smaller.capacity_milli, smaller.tau_ns) == (1_500, 9_000_000)
    assert limit == Limit("tpm", 50_000, 10_000, 60) and hash(limit) == hash(Limit("tpm", 50_000, 10_000, 60))
    assert "tau_ns" not in repr(limit)  # not a field: equality and the text form stay on the parameters


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"name": "rpm", "capacity": 0, "refill_amount": 1, "refill_period_seconds": 1}, "capacity"),
        ({"name": "rpm", "capacity": 1, "refill_amount": -1, "refill_period_seconds": 1}, "refill_amount"),
        ({"name": "rpm", "capacity": 1, "refill_amount": 1, "refill_period_seconds": math.inf}, "refill_period_seconds"),
        ({"name": "rpm", "capacity": math.nan, "refill_amount": 1, "refill_period_seconds": 1}, "capacity"),
        ({"name": "bad name", "capacity": 1, "refill_amount": 1, "refill_period_seconds": 1}, "limit.name"),
        ({"name": "x#y", "capacity": 1, "refill_amount": 1, "refill_period_seconds": 1}, "limit.name"),
    ],
)
def test_bad_limits_name_the_field(kwargs, field):
    with pytest.raises(ValidationError) as raised:
        Limit(**kwargs)
    assert field in raised.value.field
    assert isinstance(raised.value, ValueError)


def test_compact_syntax_round_trips():
    limits = parse_limits("rpm=100/min, tpm=10000/min:50000,rps=5/s,daily=1e6/day,odd=3/5min")
    assert limits == [
        Limit("rpm", 100, 100, 60),
        Limit("tpm", 50_000, 10_000, 60),
        Limit("rps", 5, 5, 1),
        Limit("daily", 1_000_000, 1_000_000, 86400),
        Limit("odd", 3, 3, 300),
    ]
    assert parse_limits(format_limits(limits)) == limits


@pytest.mark.parametrize(
    "text, needle",
    [
        ("", "expected name=rate/period"),
        ("rpm=100", "cannot read 'rpm=100'"),
        ("rpm=abc/min", "rate 'abc' is not a number"),
        ("rpm=100/fortnight", "unknown period 'fortnight'"),
        ("rpm=-1/min", "greater than 0"),
        ("rpm=1/min,rpm=2/min", "appears twice"),
        ("rpm=1/min:0", "greater than 0"),
        ("r-m=1/min", "limit name"),
    ],
)
def test_compact_syntax_errors_say_what_is_wrong(text, needle):
    with pytest.raises(ValidationError) as raised:
        parse_limits(text)
    assert needle in str(raised.value)
