"""Calendar periods of a quota: the day, ISO week (Monday first) or month that contains an instant, in a
time zone. Pure functions of the instant: daylight-saving changes and month lengths come from `zoneinfo`
(a day in Europe/Paris is 23 or 25 hours twice a year; February has 28 or 29 days).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ValidationError

EVERY = ("day", "week", "month")
NANOS = 1_000_000_000
# Nominal lengths, for display and for the refill fields a quota still carries; never used to decide.
NOMINAL_SECONDS = {"day": 86_400, "week": 604_800, "month": 2_629_746}


def check_every(field: str, every: object) -> str:
    if every not in EVERY:
        raise ValidationError(field, f"must be one of {', '.join(EVERY)}, got {every!r}")
    return every  # type: ignore[return-value]


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_tz(field: str, tz: object) -> str:
    if not isinstance(tz, str) or not tz:
        raise ValidationError(field, f"must be an IANA time zone name such as UTC or Europe/Paris, got {tz!r}")
    try:
        zone(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError(field, f"unknown time zone {tz!r}; use an IANA name such as UTC or Europe/Paris") from None
    return tz


def _start_date(local: date, every: str) -> date:
    if every == "day":
        return local
    if every == "week":
        return local - timedelta(days=local.weekday())
    return local.replace(day=1)


def _next_date(start: date, every: str) -> date:
    if every == "day":
        return start + timedelta(days=1)
    if every == "week":
        return start + timedelta(days=7)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def _midnight_ns(day: date, tz: ZoneInfo) -> int:
    """The instant local midnight begins on `day` (a midnight skipped by a DST change maps to the
    transition, as zoneinfo resolves fold=0)."""
    moment = datetime(day.year, day.month, day.day, tzinfo=tz)
    return round(moment.timestamp()) * NANOS


def period_bounds(every: str, tz: str, now_ns: int) -> tuple[int, int]:
    """[start, end) in nanoseconds since the epoch of the period that contains `now_ns`."""
    local = datetime.fromtimestamp(now_ns // NANOS, tz=zone(tz)).date()
    start = _start_date(local, every)
    zone_info = zone(tz)
    return _midnight_ns(start, zone_info), _midnight_ns(_next_date(start, every), zone_info)


def as_datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / NANOS, tz=timezone.utc)
