"""`Limit`: one token bucket's parameters, and the compact text syntax the CLI reads."""

from __future__ import annotations

import re
from decimal import Decimal
from dataclasses import dataclass
from typing import ClassVar, Iterable

from .errors import ValidationError
from .validation import check_limit_name, check_number, to_milli

NANOS = 1_000_000_000
# DynamoDB numbers hold 38 significant digits ("Data types", Number, in the DynamoDB developer guide); a
# request carrying more is refused. The numbers the limiter sends for a limit (acquire.bucket_update and
# adjustment_update) are thousandths (at most MAX_AMOUNT * 1000 = 1e18), costs in nanoseconds (the cost of
# an acquire is at most tau, the capacity's cost; an adjust's at most the cost of MAX_AMOUNT), and times:
# now, now + tau, now + tau - cost, now + margin + cost. `now` is below 2**63 ns (time.time_ns until
# 2262) and the idle margin below 1e24 ns, so bounding the cost of MAX_AMOUNT (which bounds tau too) by
# 1e37 ns keeps every one of them under 1e38, 38 digits. It means a limit refills at least 0.001 token
# every 1e19 ns (about 317 years). A bucket driven into debt by positive adjusts of the largest amount
# can take 8 of them on top of a full charge before its stored time would need a 39th digit.
MAX_COST_NS = 10**37
MAX_MILLI = 10**18  # MAX_AMOUNT in thousandths

PERIODS = {
    "s": 1, "sec": 1, "second": 1,
    "m": 60, "min": 60, "minute": 60,
    "h": 3600, "hour": 3600,
    "d": 86400, "day": 86400,
}
_PERIOD_NAMES = {1: "sec", 60: "min", 3600: "hour", 86400: "day"}


@dataclass(frozen=True)
class Limit:
    """A token bucket: holds at most `capacity` tokens, refilled continuously with `refill_amount`
    tokens every `refill_period_seconds`. A bucket never used is full."""

    name: str
    capacity: float
    refill_amount: float
    refill_period_seconds: float

    # Derived in __post_init__ (integer units of the bucket math).
    capacity_milli: ClassVar[int]
    refill_milli: ClassVar[int]
    period_ns: ClassVar[int]
    tau_ns: ClassVar[int]

    def __post_init__(self) -> None:
        check_limit_name("limit.name", self.name)
        for field in ("capacity", "refill_amount", "refill_period_seconds"):
            value = check_number(f"limit {self.name}.{field}", getattr(self, field), positive=True)
            object.__setattr__(self, field, value)
        if self.capacity < 0.001 or self.refill_amount < 0.001:
            raise ValidationError(f"limit {self.name}", "capacity and refill_amount must be at least 0.001")
        if round(self.refill_period_seconds * NANOS) < 1:
            raise ValidationError(f"limit {self.name}.refill_period_seconds", "must be at least 1ns")
        # The integer units the bucket math works in, derived once: every acquire, and every local
        # rejection, reads them for each limit, and recomputing them from the floats was most of the
        # cost of a rejection decided without a request. Not fields: equality and hashing stay on the
        # four parameters, and dataclasses.replace() derives them again.
        capacity_milli = to_milli(self.capacity)
        refill_milli = to_milli(self.refill_amount)
        period_ns = round(self.refill_period_seconds * NANOS)
        object.__setattr__(self, "capacity_milli", capacity_milli)
        object.__setattr__(self, "refill_milli", refill_milli)
        object.__setattr__(self, "period_ns", period_ns)
        if -((-MAX_MILLI * period_ns) // refill_milli) > MAX_COST_NS:
            raise ValidationError(
                f"limit {self.name}",
                f"refills too slowly to be stored: {_num(self.refill_amount)} per {_num(self.refill_period_seconds)} s "
                f"is less than 0.001 token per {MAX_COST_NS // MAX_MILLI // NANOS:,} s (about 317 years), and its "
                "bucket times would need more than the 38 digits a DynamoDB number holds",
            )
        object.__setattr__(self, "tau_ns", -((-capacity_milli * period_ns) // refill_milli))

    @classmethod
    def per_second(cls, name: str, rate: float, burst: float | None = None) -> "Limit":
        return cls._per(name, rate, burst, 1)

    @classmethod
    def per_minute(cls, name: str, rate: float, burst: float | None = None) -> "Limit":
        return cls._per(name, rate, burst, 60)

    @classmethod
    def per_hour(cls, name: str, rate: float, burst: float | None = None) -> "Limit":
        return cls._per(name, rate, burst, 3600)

    @classmethod
    def per_day(cls, name: str, rate: float, burst: float | None = None) -> "Limit":
        return cls._per(name, rate, burst, 86400)

    @classmethod
    def _per(cls, name: str, rate: float, burst: float | None, period: float) -> "Limit":
        rate = check_number(f"limit {name}.rate", rate, positive=True)
        capacity = rate if burst is None else check_number(f"limit {name}.burst", burst, positive=True)
        return cls(name, capacity, rate, period)

    def to_text(self) -> str:
        """The compact syntax: `rpm=100/min` or `tpm=10000/min:50000` (rate/period[:burst])."""
        period = _PERIOD_NAMES.get(int(self.refill_period_seconds)) if self.refill_period_seconds.is_integer() else None
        period_text = period or f"{_num(self.refill_period_seconds)}s"
        text = f"{self.name}={_num(self.refill_amount)}/{period_text}"
        if self.capacity != self.refill_amount:
            text += f":{_num(self.capacity)}"
        return text


def _num(value: float) -> str:
    """The shortest text that reads back as the same float, never with an exponent: `1e-05s` would not
    parse as a period (the syntax has no exponent there), so the decimal digits are written out."""
    value = float(value)
    if value.is_integer():
        return str(int(value))
    text = repr(value)
    return format(Decimal(text), "f") if "e" in text else text


_ITEM = re.compile(
    r"\s*(?P<name>[^=\s]+)\s*=\s*(?P<rate>[^/\s]+)\s*/\s*(?P<count>\d+(?:\.\d+)?)?(?P<unit>[a-z]+)\s*(?::\s*(?P<burst>\S+))?\s*"
)


def parse_limits(text: str, field: str = "limits") -> list[Limit]:
    """Parse `rpm=100/min,tpm=10000/min:50000`. Periods: s, sec, min, m, hour, h, day, d, with an optional
    count (`10/5min`). `:N` sets the burst capacity (default: the rate)."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(field, "expected name=rate/period[:burst], comma-separated, e.g. rpm=100/min")
    limits: list[Limit] = []
    for part in text.split(","):
        match = _ITEM.fullmatch(part)
        if not match:
            raise ValidationError(field, f"cannot read {part.strip()!r}: expected name=rate/period[:burst], e.g. tpm=10000/min:50000")
        name = match["name"]
        unit = match["unit"]
        if unit not in PERIODS:
            raise ValidationError(field, f"unknown period {unit!r} in {part.strip()!r}; use one of s, min, hour, day")
        rate = _parse_number(field, name, "rate", match["rate"])
        burst = _parse_number(field, name, "burst", match["burst"]) if match["burst"] else None
        period = PERIODS[unit] * float(match["count"] or 1)
        limit = Limit(check_limit_name(f"{field}: name", name), burst if burst is not None else rate, rate, period)
        limits.append(limit)
    check_unique(limits, field)
    return limits


def _parse_number(field: str, name: str, what: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValidationError(field, f"{name}: {what} {text!r} is not a number") from None
    return check_number(f"{field}: {name}.{what}", value, positive=True)


def check_unique(limits: Iterable[Limit], field: str = "limits") -> list[Limit]:
    if not isinstance(limits, (list, tuple)):
        # A lone Limit, a spec string or a dict is a common slip; iterating it would fail obscurely.
        hint = " (parse text with zae_limiter.limits.parse_limits)" if isinstance(limits, str) else ""
        raise ValidationError(field, f"must be a list of Limit, got {type(limits).__name__}{hint}")
    seen: set[str] = set()
    result = []
    for limit in limits:
        if not isinstance(limit, Limit):
            raise ValidationError(field, f"expected Limit objects, got {type(limit).__name__}")
        if limit.name in seen:
            raise ValidationError(field, f"limit {limit.name!r} appears twice")
        seen.add(limit.name)
        result.append(limit)
    return result


def format_limits(limits: Iterable[Limit]) -> str:
    return ",".join(limit.to_text() for limit in limits)
