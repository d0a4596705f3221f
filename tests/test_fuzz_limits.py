"""Fuzzing the CLI's limit syntax: `parse_limits` turns any text into Limits or a ValidationError (never
another exception), and what it accepts survives `format_limits` -> `parse_limits` unchanged."""

from __future__ import annotations

import string

from hypothesis import example, given, settings
from hypothesis import strategies as st

from zae_limiter import Limit, ValidationError
from zae_limiter.core.limits import PERIODS, format_limits, parse_limits

# Specs built from the grammar (name = rate / [count]unit [: burst]), each piece either valid or one of
# the near-misses a user types, so the fuzzer reaches every branch instead of failing at the first
# character; plus the grammar's tokens in any order, and arbitrary unicode.
VALID_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
NAME = st.one_of(
    VALID_NAME, VALID_NAME, VALID_NAME,
    st.sampled_from(["", "1x", "a-b", "é", "a#b", "a b", "x" * 65, "rpm\x00"]),
)
NUMBER = st.one_of(
    st.integers(1, 10**6).map(str),
    st.integers(0, 10**16).map(str),
    st.floats(min_value=0, max_value=1e17).map(repr),
    st.sampled_from(["-1", "0", "0.0004", "1e3", "1E-2", "inf", "nan", "1e400", "1_0", "٣", "1.", ".5", "0x10", ""]),
)
COUNT = st.one_of(st.just(""), st.integers(0, 1000).map(str),
                  st.sampled_from(["0.5", "1.25", "٣", "00", "0.0000000001", "9" * 30]))
UNIT = st.one_of(st.sampled_from(sorted(PERIODS)), st.sampled_from(sorted(PERIODS)), st.sampled_from(["", "ms", "MIN", "week", "x", "s s"]))
SPACE = st.sampled_from(["", " ", "\t", "\u00a0"])


@st.composite
def spec_item(draw) -> str:
    text = draw(NAME) + draw(SPACE) + "=" + draw(SPACE) + draw(NUMBER) + draw(SPACE) + "/" + draw(SPACE)
    text += draw(COUNT) + draw(UNIT)
    if draw(st.booleans()):
        text += draw(SPACE) + ":" + draw(SPACE) + draw(NUMBER)
    return text + draw(SPACE)


SPECS = st.lists(spec_item(), min_size=1, max_size=3).map(",".join)
TOKENS = st.lists(
    st.sampled_from(["rpm", "tpm", "=", "/", ":", ",", " ", ".", "-", "1", "10", "0.5", "1e3", *PERIODS]), max_size=12
).map("".join)
ANY_TEXT = st.text(max_size=40)

PERIOD_SECONDS = st.one_of(
    st.sampled_from([1.0, 60.0, 3600.0, 86400.0, 0.5, 120.0]),
    st.floats(min_value=1e-9, max_value=1e6, allow_nan=False, allow_infinity=False),
)
AMOUNT = st.floats(min_value=0.001, max_value=1e12, allow_nan=False, allow_infinity=False)


def parse_or_reject(text: object) -> list[Limit] | None:
    try:
        return parse_limits(text)  # type: ignore[arg-type]
    except ValidationError as error:
        assert error.field and "limit" in error.field, error  # the message names the field
        return None


@settings(max_examples=400, deadline=None)
@given(st.one_of(SPECS, TOKENS, ANY_TEXT))
@example("rpm=1/٣min")  # a unicode digit in the period count
@example("rpm=1_0/min")  # float() accepts underscores
@example("rpm=1/0.0000000001s")  # below a nanosecond
def test_parse_limits_accepts_or_raises_validation_error_only(text):
    parsed = parse_or_reject(text)
    if parsed is not None:
        assert parsed and all(isinstance(limit, Limit) for limit in parsed)
        assert parse_limits(format_limits(parsed)) == parsed


@settings(max_examples=50, deadline=None)
@given(st.one_of(st.none(), st.integers(), st.binary(max_size=10), st.lists(st.text(max_size=3), max_size=3)))
def test_non_text_is_a_validation_error(value):
    assert parse_or_reject(value) is None


@st.composite
def limits(draw):
    names = draw(st.lists(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True), min_size=1, max_size=4, unique=True))
    result = []
    for name in names:
        try:
            result.append(Limit(name, draw(AMOUNT), draw(AMOUNT), draw(PERIOD_SECONDS)))
        except ValidationError:
            continue  # e.g. a period that rounds to 0 ns: not a Limit at all
    return result


@settings(max_examples=300, deadline=None)
@given(limits())
@example([Limit("rpm", 1, 1, 1e-05)])  # a period repr() writes with an exponent
@example([Limit("rpm", 1, 1, 123456.75)])
def test_every_limit_round_trips_through_the_text_syntax(limit_list):
    if not limit_list:
        return
    text = format_limits(limit_list)
    assert set(text) <= set(string.ascii_letters + string.digits + "_=/:,.-+")
    assert parse_limits(text) == limit_list
