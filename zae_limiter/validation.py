"""Input checks shared by the API, the CLI and the codecs. Each failure names the bad field."""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from .errors import ValidationError

MAX_ID_LENGTH = 256
LIMIT_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# Amounts are counted in thousandths of a token; beyond this a float loses the unit.
MAX_AMOUNT = 1e15


def check_id(field: str, value: Any) -> str:
    """An entity id or resource name: it becomes part of a DynamoDB key, so it must not be able to
    escape its prefix (`#`) or carry control characters."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {type(value).__name__}")
    if not value:
        raise ValidationError(field, "must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise ValidationError(field, f"must be at most {MAX_ID_LENGTH} characters, got {len(value)}")
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
    if isinstance(value, bool) or not isinstance(value, (int, float)):
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


def to_milli(value: float) -> int:
    """Tokens to integer thousandths: all stored counters use this unit so sums are exact."""
    return round(value * 1000)
