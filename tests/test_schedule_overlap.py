"""Two schedule entries that fire at one instant are refused (which limits apply would be undefined); the
check's verdict is that of comparing their firings over the horizon (the definition), whatever shortcut
it takes for entries that can never share a clock time."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from croniter import croniter

from zae_limiter import Limit, ValidationError
from zae_limiter.core.schedules import OVERLAP_HORIZON, check_schedule

RPM = [Limit.per_minute("rpm", 10)]
PAIRS = [
    ("0 9 * * 1-5", "0 18 * * 1-5"),  # other hours
    ("0 9 * * 1-5", "30 9 * * 1-5"),  # other minutes
    ("0 9 * * 1-5", "0 9 * * 6,0"),  # one clock time, other days
    ("0 9 * * 1-5", "0 9 * * 5"),  # Fridays at 9: both
    ("*/15 * * * *", "0 12 * * *"),  # noon is a quarter hour
    ("0 0 1 * *", "0 0 * * 1"),  # a month starting on a Monday
]


def _fire_together(first: str, second: str) -> bool:
    start = datetime.now(timezone.utc).replace(second=0, microsecond=0)

    def firings(cron: str) -> set[datetime]:
        iterator = croniter(cron, start)
        return {iterator.get_next(datetime) for _ in range(OVERLAP_HORIZON)}

    return bool(firings(first) & firings(second))


@pytest.mark.parametrize("first,second", PAIRS)
def test_overlap_verdict_is_that_of_the_firings(first, second):
    schedule = [(first, RPM), (second, RPM)]
    if _fire_together(first, second):
        with pytest.raises(ValidationError) as raised:
            check_schedule(schedule)
        assert raised.value.field == "schedule[1]"
    else:
        assert [cron for cron, _ in check_schedule(schedule)] == [first, second]


def test_one_entry_needs_no_comparison():
    assert check_schedule([("0 9 * * 1-5", RPM)])[0][0] == "0 9 * * 1-5"


@pytest.mark.parametrize("schedule", [[("0 0 31 2 *", RPM)], [("0 9 * * *", RPM), ("0 0 30 2 *", RPM)]])
def test_an_entry_that_never_fires_is_refused_by_its_index(schedule):
    """Valid syntax for a date that never comes (30 or 31 February)."""
    with pytest.raises(ValidationError) as raised:
        check_schedule(schedule)
    assert raised.value.field == f"schedule[{len(schedule) - 1}]" and "never fires" in str(raised.value)
