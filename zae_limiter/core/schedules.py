"""Scheduled limits: `[(cron, limits), ...]` next to a level's limits. Pure functions of the instant.

The level's own limits apply from the moment they are set; then, at each time an entry's cron
expression fires (UTC), that entry's limits take effect, the latest past firing winning. So the limits
in force at `t` are those of the entry that fired last in (set, t], or the level's own limits if none
has fired since it was set. Cron expressions are parsed by croniter (the `schedules` extra).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from .errors import ValidationError, ZaeLimiterError
from .limits import Limit, check_unique

NANOS = 1_000_000_000
MISSING_EXTRA = "scheduled limits need the schedules extra: pip install 'zae-limiter[schedules]'"
# How many firings of each entry the overlap check compares (a schedule whose entries first fire at
# the same instant later than that is not caught; every-minute entries cover about a week).
OVERLAP_HORIZON = 10_000
_ONE_SECOND = timedelta(seconds=1)


class ScheduleUnavailable(ZaeLimiterError):
    """A stored schedule cannot be evaluated: the `schedules` extra is not installed."""


def _croniter() -> Any:
    try:
        from croniter import croniter
    except ImportError:
        raise ScheduleUnavailable(MISSING_EXTRA) from None
    return croniter


Schedule = tuple[tuple[str, tuple[Limit, ...]], ...]


def check_schedule(schedule: Any, field: str = "schedule") -> Schedule:
    """`[(cron, [Limit, ...]), ...]` checked: valid five-field cron expressions, limits as for
    set_limits, and no two entries that fire at the same instant (which would leave the winner undefined)."""
    if schedule is None:
        return ()
    if isinstance(schedule, (str, bytes)) or not isinstance(schedule, (list, tuple)):
        raise ValidationError(field, "must be a list of (cron, [Limit, ...]) pairs")
    croniter = _croniter()
    entries = []
    for index, entry in enumerate(schedule):
        where = f"{field}[{index}]"
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise ValidationError(where, "must be a (cron, [Limit, ...]) pair")
        cron, limits = entry
        if not isinstance(cron, str) or len(cron.split()) != 5 or not croniter.is_valid(cron):
            raise ValidationError(where, f"{cron!r} is not a cron expression of five fields, e.g. '0 9 * * MON-FRI'")
        try:  # valid syntax, but a date that never comes (31 February) would fail every later read
            croniter(cron, datetime.now(timezone.utc)).get_next(datetime)
        except Exception:
            raise ValidationError(where, f"{cron!r} never fires (no date matches it)") from None
        checked = tuple(check_unique(limits, f"{where} limits"))
        if not checked:
            raise ValidationError(f"{where} limits", "must hold at least one Limit")
        entries.append((cron, checked))
    _check_no_overlap(entries, field, croniter)
    return tuple(entries)


def _firings(croniter: Any, cron: str, start: datetime, count: int) -> list[datetime]:
    iterator = croniter(cron, start)
    return [iterator.get_next(datetime) for _ in range(count)]


def _clock_times(croniter: Any, cron: str) -> tuple[set[int], set[int]]:
    """The minutes and hours `cron` can fire at ('*' is every one)."""
    fields = croniter.expand(cron)[0]
    minutes, hours = (set(range(span)) if values == ["*"] else set(values) for values, span in zip(fields, (60, 24)))
    return minutes, hours


def _check_no_overlap(entries: Sequence[tuple[str, Any]], field: str, croniter: Any) -> None:
    if len(entries) < 2:
        return
    start = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    times = [_clock_times(croniter, cron) for cron, _ in entries]
    firings: dict[int, set[datetime]] = {}  # scanned only for entries that share a minute and an hour
    for i in range(len(entries)):
        for j in range(i + 1, len(entries)):
            if not (times[i][0] & times[j][0] and times[i][1] & times[j][1]):
                continue  # never the same clock time, so never the same instant
            for k in (i, j):
                if k not in firings:
                    firings[k] = set(_firings(croniter, entries[k][0], start, OVERLAP_HORIZON))
            both = firings[i] & firings[j]
            if both:
                raise ValidationError(
                    f"{field}[{j}]",
                    f"{entries[j][0]!r} fires at the same instant as entry {i} ({entries[i][0]!r}), e.g. "
                    f"{min(both):%Y-%m-%d %H:%M} UTC: which limits would apply is undefined",
                )


def in_force(base: tuple[Limit, ...], schedule: Schedule, since_ns: int, now_ns: int) -> tuple[tuple[Limit, ...], int | None]:
    """The limits in force at `now_ns` and when that can next change (ns; None: never)."""
    if not schedule:
        return base, None
    croniter = _croniter()
    now = datetime.fromtimestamp(now_ns / NANOS, tz=timezone.utc)
    latest: tuple[datetime, tuple[Limit, ...]] | None = None
    upcoming: datetime | None = None
    for cron, limits in schedule:
        # get_prev from just after now: a firing at exactly `now` is in force at `now`.
        fired = croniter(cron, now.replace(microsecond=0) + _ONE_SECOND).get_prev(datetime)
        if fired.timestamp() * NANOS > since_ns and (latest is None or fired > latest[0]):
            latest = (fired, limits)
        following = croniter(cron, now).get_next(datetime)
        upcoming = following if upcoming is None or following < upcoming else upcoming
    limits = latest[1] if latest is not None else base
    return limits, None if upcoming is None else int(upcoming.timestamp()) * NANOS

