"""`Limit`: one token bucket's parameters, and the compact text syntax the CLI reads."""

from __future__ import annotations

import re
from decimal import Decimal
from dataclasses import dataclass
from typing import ClassVar, Iterable

from . import calendar_periods
from .errors import ValidationError
from .validation import check_limit_name, check_number, to_milli

NANOS = 1_000_000_000
# DynamoDB numbers hold 38 significant digits ("Data types", Number, in the DynamoDB developer guide); a
# request carrying more is refused. The numbers the limiter sends for a limit (acquire.bucket_update and
# adjustment_update) are thousandths (at most MAX_AMOUNT * 1000 = 1e18), costs in nanoseconds (the cost of
# an acquire is at most tau, the capacity's cost; an adjust's, or a soft limit's take, at most the cost of
# MAX_AMOUNT), and times: now, now + tau, now + tau - cost, now + cost. `now` is below 2**63 ns
# (time.time_ns until 2262), so bounding the cost of MAX_AMOUNT (which bounds tau too) by 1e37 ns keeps
# every one of them under 1e38, 38 digits. It means a limit refills at least 0.001 token
# every 1e19 ns (about 317 years). A bucket driven into debt by positive adjusts of the largest amount
# can take 8 of them on top of a full charge before its stored time would need a 39th digit. (A quota's
# clock is its period's start times QUOTA_SCALE, under 1e30, and its costs are thousandths: far from it.)
MAX_COST_NS = 10**37
MAX_MILLI = 10**18  # MAX_AMOUNT in thousandths

PERIODS = {
    "s": 1, "sec": 1, "second": 1,
    "m": 60, "min": 60, "minute": 60,
    "h": 3600, "hour": 3600,
    "d": 86400, "day": 86400,
}
_PERIOD_NAMES = {1: "sec", 60: "min", 3600: "hour", 86400: "day"}
# `lease.adjust(resource=...)` names the resource of a multi-resource lease, so no limit may be called so.
RESERVED_NAME = "resource"
# A quota's bucket state is its period's start (epoch seconds) times this, plus the thousandths used.
QUOTA_SCALE = 10**20


@dataclass(frozen=True)
class Limit:
    """A token bucket: holds at most `capacity` tokens, refilled continuously with `refill_amount`
    tokens every `refill_period_seconds`. A bucket never used is full.

    `soft`: metered like any other limit, but never refuses (the lease's `overdrawn` lists it when it
    would have). `every` ("day", "week" or "month", see `Limit.quota`): a calendar quota instead, full
    again at each period boundary in time zone `tz`, with no refill between."""

    name: str
    capacity: float
    refill_amount: float
    refill_period_seconds: float
    soft: bool = False
    every: str | None = None
    tz: str | None = None

    # Derived in __post_init__ (integer units of the bucket math).
    capacity_milli: ClassVar[int]
    refill_milli: ClassVar[int]
    period_ns: ClassVar[int]
    tau_ns: ClassVar[int]

    def __post_init__(self) -> None:
        check_limit_name("limit.name", self.name)
        if self.name == RESERVED_NAME:
            raise ValidationError("limit.name", f"{RESERVED_NAME!r} is reserved: lease.adjust(resource=...) names a resource")
        if not isinstance(self.soft, bool):
            raise ValidationError(f"limit {self.name}.soft", f"must be True or False, got {self.soft!r}")
        if self.every is None:
            if self.tz is not None:
                raise ValidationError(f"limit {self.name}.tz", "only a calendar quota (every=...) has a time zone")
        else:
            calendar_periods.check_every(f"limit {self.name}.every", self.every)
            calendar_periods.check_tz(f"limit {self.name}.tz", "UTC" if self.tz is None else self.tz)
            if self.tz is None:
                object.__setattr__(self, "tz", "UTC")
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
        if self.every is None and -((-MAX_MILLI * period_ns) // refill_milli) > MAX_COST_NS:
            raise ValidationError(
                f"limit {self.name}",
                f"refills too slowly to be stored: {_num(self.refill_amount)} per {_num(self.refill_period_seconds)} s "
                f"is less than 0.001 token per {MAX_COST_NS // MAX_MILLI // NANOS:,} s (about 317 years), and its "
                "bucket times would need more than the 38 digits a DynamoDB number holds",
            )
        object.__setattr__(self, "tau_ns", -((-capacity_milli * period_ns) // refill_milli))
        if self.every is not None:
            # A quota is a bucket whose clock is its period's start (bucket.clock) and whose cost is the
            # amount itself: a "period" of refill_milli units makes cost_ns(milli) == milli exactly.
            if capacity_milli >= QUOTA_SCALE:
                raise ValidationError(f"limit {self.name}.capacity", f"a quota holds less than {QUOTA_SCALE // 1000:g} tokens")
            object.__setattr__(self, "period_ns", refill_milli)
            object.__setattr__(self, "tau_ns", capacity_milli)
        object.__setattr__(self, "_period", (0, 0))  # the quota period last seen: [start_ns, end_ns)

    @property
    def is_quota(self) -> bool:
        return self.every is not None

    @classmethod
    def quota(cls, name: str, amount: float, every: str = "day", tz: str = "UTC", soft: bool = False) -> "Limit":
        """An allowance of `amount` per calendar day, week (from Monday) or month in `tz`: full again at
        each boundary, with no refill between; the rejection's retry-after runs to the boundary."""
        amount = check_number(f"limit {name}.amount", amount, positive=True)
        every = calendar_periods.check_every(f"limit {name}.every", every)
        return cls(name, amount, amount, calendar_periods.NOMINAL_SECONDS[every], soft=soft, every=every, tz=tz)

    def period(self, now_ns: int) -> tuple[int, int]:
        """[start, end) of the quota period that contains `now_ns` (cached: every acquire asks)."""
        start, end = self._period  # type: ignore[attr-defined]
        if not start <= now_ns < end:
            start, end = calendar_periods.period_bounds(self.every, self.tz, now_ns)  # type: ignore[arg-type]
            object.__setattr__(self, "_period", (start, end))
        return start, end

    @classmethod
    def per_second(cls, name: str, rate: float, burst: float | None = None, soft: bool = False) -> "Limit":
        return cls._per(name, rate, burst, 1, soft)

    @classmethod
    def per_minute(cls, name: str, rate: float, burst: float | None = None, soft: bool = False) -> "Limit":
        return cls._per(name, rate, burst, 60, soft)

    @classmethod
    def per_hour(cls, name: str, rate: float, burst: float | None = None, soft: bool = False) -> "Limit":
        return cls._per(name, rate, burst, 3600, soft)

    @classmethod
    def per_day(cls, name: str, rate: float, burst: float | None = None, soft: bool = False) -> "Limit":
        return cls._per(name, rate, burst, 86400, soft)

    @classmethod
    def _per(cls, name: str, rate: float, burst: float | None, period: float, soft: bool) -> "Limit":
        rate = check_number(f"limit {name}.rate", rate, positive=True)
        capacity = rate if burst is None else check_number(f"limit {name}.burst", burst, positive=True)
        return cls(name, capacity, rate, period, soft=soft)

    def to_text(self) -> str:
        """The compact syntax: `rpm=100/min`, `tpm=10000/min:50000` (rate/period[:burst]), `budget=1000000
        per month` or `per day in Europe/Paris` (a quota), each optionally after `soft `."""
        prefix = "soft " if self.soft else ""
        if self.every is not None:
            where = "" if self.tz == "UTC" else f" in {self.tz}"
            return f"{prefix}{self.name}={_num(self.capacity)} per {self.every}{where}"
        period = _PERIOD_NAMES.get(int(self.refill_period_seconds)) if self.refill_period_seconds.is_integer() else None
        period_text = period or f"{_num(self.refill_period_seconds)}s"
        text = f"{self.name}={_num(self.refill_amount)}/{period_text}"
        if self.capacity != self.refill_amount:
            text += f":{_num(self.capacity)}"
        return prefix + text


def _num(value: float) -> str:
    """The shortest text that reads back as the same float, never with an exponent: `1e-05s` would not
    parse as a period (the syntax has no exponent there), so the decimal digits are written out."""
    value = float(value)
    if value.is_integer():
        return str(int(value))
    text = repr(value)
    return format(Decimal(text), "f") if "e" in text else text


_ITEM = re.compile(
    r"\s*(?P<soft>soft\s+)?(?P<name>[^=\s]+)\s*=\s*(?P<rate>[^/\s]+)\s*/\s*(?P<count>\d+(?:\.\d+)?)?(?P<unit>[a-z]+)\s*(?::\s*(?P<burst>\S+))?\s*"
)
_QUOTA = re.compile(
    r"\s*(?P<soft>soft\s+)?(?P<name>[^=\s]+)\s*=\s*(?P<amount>[^\s/]+)\s+per\s+(?P<every>[a-z]+)(?:\s+in\s+(?P<tz>\S+))?\s*"
)


def parse_limits(text: str, field: str = "limits") -> list[Limit]:
    """Parse `rpm=100/min,tpm=10000/min:50000`. Periods: s, sec, min, m, hour, h, day, d, with an optional
    count (`10/5min`). `:N` sets the burst capacity (default: the rate). A calendar quota is `name=amount
    per day|week|month`, optionally `in TZ` (an IANA zone; default UTC). `soft ` before any of them makes a
    soft limit."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(field, "expected name=rate/period[:burst], comma-separated, e.g. rpm=100/min")
    limits: list[Limit] = []
    for part in text.split(","):
        quota = _QUOTA.fullmatch(part)
        if quota:
            limits.append(_parse_quota(field, quota))
            continue
        match = _ITEM.fullmatch(part)
        if not match:
            raise ValidationError(
                field,
                f"cannot read {part.strip()!r}: expected name=rate/period[:burst] (e.g. tpm=10000/min:50000) or "
                "name=amount per day|week|month [in TZ] (e.g. budget=1000000 per month), optionally after 'soft '",
            )
        name = match["name"]
        unit = match["unit"]
        if unit not in PERIODS:
            raise ValidationError(field, f"unknown period {unit!r} in {part.strip()!r}; use one of s, min, hour, day")
        rate = _parse_number(field, name, "rate", match["rate"])
        burst = _parse_number(field, name, "burst", match["burst"]) if match["burst"] else None
        period = PERIODS[unit] * float(match["count"] or 1)
        limit = Limit(check_limit_name(f"{field}: name", name), burst if burst is not None else rate, rate, period,
                      soft=bool(match["soft"]))
        limits.append(limit)
    check_unique(limits, field)
    return limits


def _parse_quota(field: str, match: re.Match) -> Limit:
    name = check_limit_name(f"{field}: name", match["name"])
    amount = _parse_number(field, name, "amount", match["amount"])
    every = calendar_periods.check_every(f"{field}: {name}.every", match["every"])
    tz = calendar_periods.check_tz(f"{field}: {name}.tz", match["tz"] or "UTC")
    return Limit.quota(name, amount, every=every, tz=tz, soft=bool(match["soft"]))


def _parse_number(field: str, name: str, what: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValidationError(field, f"{name}: {what} {text!r} is not a number") from None
    return check_number(f"{field}: {name}.{what}", value, positive=True)


def check_unique(limits: Iterable[Limit], field: str = "limits") -> list[Limit]:
    if not isinstance(limits, (list, tuple)):
        # A lone Limit, a spec string or a dict is a common slip; iterating it would fail obscurely.
        hint = " (parse text with zae_limiter.parse_limits)" if isinstance(limits, str) else ""
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
