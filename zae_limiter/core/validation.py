"""Input checks shared by the API, the CLI and the codecs. Each failure names the bad field."""

from __future__ import annotations

import math
import re
import unicodedata
from decimal import Decimal
from fractions import Fraction
from typing import Any

from .errors import ValidationError

MAX_ID_LENGTH = 256
# DynamoDB limits key attributes in UTF-8 bytes, not characters: a partition key (table or index) holds at
# most 2048 bytes, a sort key at most 1024 ("Service, account, and table quotas in Amazon DynamoDB",
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html, "Partition key length"
# and "Sort key length"; the same for the key attributes of a global secondary index).
PARTITION_KEY_MAX_BYTES = 2048
SORT_KEY_MAX_BYTES = 1024
# The longest id whose every key fits: the longest sort key the schema builds around an id is a usage
# snapshot's, `#USAGE#{resource}#monthly#2026-01-01T00:00:00Z` (36 bytes besides the resource); schema.py
# checks at import that each key it builds leaves room for this many bytes.
MAX_ID_BYTES = 988
LIMIT_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# Amounts are counted in thousandths of a token; beyond this a float loses the unit (ints and Decimals
# would not, but one bound for every type keeps the stored numbers and the bucket times in range).
MAX_AMOUNT = 1e15
SMALLEST_AMOUNT = 0.001  # one thousandth: the unit every counter and bucket counts in
SMALLEST_DECIMAL = Decimal("0.001")  # the same, for Decimal amounts (the float is a hair above it)
# AWS region names: a partition's prefix (us, eu, ap, cn, us-gov, us-iso, eusc-de, ...), a direction and a
# number, as in botocore's endpoint data (every region it lists matches; tests/test_reliability_input.py).
REGION_PATTERN = re.compile(r"[a-z]{2,4}(?:-[a-z]+){1,3}-[0-9]{1,2}")


def check_id(field: str, value: Any) -> str:
    """An entity id or resource name: it becomes part of a DynamoDB key, so it must not be able to
    escape its prefix (`#`) or carry control characters."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {type(value).__name__}")
    if not value:
        raise ValidationError(field, "must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise ValidationError(field, f"must be at most {MAX_ID_LENGTH} characters, got {len(value)}")
    # A character is at most 4 bytes, so only ids longer than a quarter of the limit need encoding.
    if len(value) * 4 > MAX_ID_BYTES and not value.isascii():
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > MAX_ID_BYTES:
            raise ValidationError(
                field,
                f"must be at most {MAX_ID_BYTES} bytes in UTF-8 (DynamoDB limits its keys in bytes), got {size} "
                f"bytes in {len(value)} characters",
            )
    if "#" in value:
        raise ValidationError(field, f"must not contain '#': {value!r}")
    if value.isprintable():  # no character of any category below: the common case, in one C call
        return value
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            raise ValidationError(field, f"must not contain control characters: {value!r}")
    return value


def check_limit_name(field: str, value: Any) -> str:
    if not isinstance(value, str) or not LIMIT_NAME_PATTERN.fullmatch(value):
        raise ValidationError(
            field,
            f"a limit name is a letter or '_' then up to 63 letters, digits or '_', got {value!r}",
        )
    return value


def check_number(field: str, value: Any, *, positive: bool = False, allow_negative: bool = False) -> float:
    """`value` checked (a finite int, float or Decimal in range), as a float. An amount keeps the value as
    given for `charged_milli`, which counts it exactly."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValidationError(field, f"must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        raise ValidationError(field, f"must be at most {MAX_AMOUNT:g} in size, got an integer of {value.bit_length()} bits") from None
    if not math.isfinite(number):
        raise ValidationError(field, f"must be finite, got {value!r}")
    if abs(number) > MAX_AMOUNT:
        raise ValidationError(field, f"must be at most {MAX_AMOUNT:g} in size, got {value!r}")
    if positive and number <= 0:
        raise ValidationError(field, f"must be greater than 0, got {value!r}")
    if not allow_negative and number < 0:
        raise ValidationError(field, f"must not be negative, got {value!r}")
    return number


# A float within a millionth of a thousandth of a whole number of thousandths is that number: arithmetic
# noise, not a fraction (0.1 + 0.2 is 0.30000000000000004, which is 300 thousandths).
FLOAT_NOISE = Fraction(1, 10**6)


def _thousandths(value: float | Decimal) -> Fraction:
    """The amount in thousandths, exactly: a Decimal as written (no context precision applies), a float as
    the decimal it prints as, less its arithmetic noise. A float product is not exact: 999999999999.999 *
    1000 is 999999999999998.9, and past 2**53 thousandths it is off by whole units."""
    if isinstance(value, Decimal):
        return Fraction(value) * 1000
    scaled = Fraction(Decimal(repr(float(value)))) * 1000  # float(): a subclass (numpy's) prints otherwise
    nearest = round(scaled)
    return Fraction(nearest) if abs(scaled - nearest) <= FLOAT_NOISE else scaled


def _check_unit(value: float | Decimal, field: str, key: str | None) -> None:
    """An amount below one thousandth (other than 0) cannot be counted: refused rather than counted as 0
    or 0.001. The error names `field`, or `field[key]` (built only then: this runs on every acquire)."""
    smallest = SMALLEST_DECIMAL if isinstance(value, Decimal) else SMALLEST_AMOUNT  # compared exactly
    if value and -smallest < value < smallest:
        raise ValidationError(
            field if key is None else f"{field}[{key!r}]",
            f"must be 0 or at least {SMALLEST_AMOUNT:g} in size (amounts count in thousandths), got {value!r}",
        )


def to_milli(value: int | float | Decimal, field: str = "amount", key: str | None = None) -> int:
    """Tokens to integer thousandths, to the nearest: all stored counters use this unit so sums are exact."""
    if isinstance(value, int):
        return int(value) * 1000
    _check_unit(value, field, key)
    return round(_thousandths(value))


def charged_milli(value: int | float | Decimal, field: str = "amount", key: str | None = None) -> int:
    """An amount taken (positive) or given back (negative) in thousandths, exactly, rounded in the limit's
    favour where it has a finer fraction: a charge up, a give-back towards zero (0.0025 tokens is charged
    as 3 thousandths; -0.0025 gives back 2)."""
    if type(value) is int:  # the common case: whole tokens
        return value * 1000
    if isinstance(value, int):  # an int subclass (IntEnum, ...)
        return int(value) * 1000
    _check_unit(value, field, key)
    scaled = abs(_thousandths(value))
    whole = math.ceil(scaled) if value > 0 else math.floor(scaled)
    return whole if value >= 0 else -whole


def check_region(field: str, value: Any) -> str:
    """An AWS region name (us-east-1, eu-central-2, us-gov-west-1, cn-north-1)."""
    if not isinstance(value, str) or not REGION_PATTERN.fullmatch(value):
        raise ValidationError(field, f"must be an AWS region name such as us-east-1 or eu-central-2, got {value!r}")
    return value
