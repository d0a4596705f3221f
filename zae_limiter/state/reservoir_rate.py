"""A client's observed rate of one bucket, from which reservoirs.py sizes its reserves."""

from __future__ import annotations

import math
from typing import Mapping

RATE_HALF_LIFE = 1.0  # seconds: how fast the observed rate follows a change of load
_PER_TAKE = math.log(2) / RATE_HALF_LIFE  # what one take adds to the average, per unit it takes


class Rate:
    """This client's rate of one bucket, thousandths per second per limit: an exponentially decaying
    average (half-life RATE_HALF_LIFE) of what it took since it started taking, read as what it took
    over at least the last `window` seconds. Unbiased from the first take on (a plain average that
    starts at 0 needs about a half-life to see a rate, and a reserve sized from it stays small for as
    long: every acquire in that time is a write). The window (`reservoir_seconds`) is the slow start: a
    client that has taken k tokens so far is credited with about k per window at most, so a burst of a
    few acquires reserves a few tokens, and a steady client doubles its reserve with each refill until
    it holds `reservoir_seconds` of its rate. A pause longer than RATE_HALF_LIFE starts it over."""

    __slots__ = ("per_second", "at", "since")

    def __init__(self) -> None:
        self.per_second: dict[str, float] = {}
        self.at = 0.0  # the last take
        self.since = 0.0  # the first take since the client started (again) taking

    def add(self, amounts: Mapping[str, int], now: float) -> None:
        if not self.at or now - self.at > RATE_HALF_LIFE:
            # The first take (again): it starts the clock; the takes after it make the rate.
            self.per_second, self.at, self.since = {}, now, now
            return
        decay = 0.5 ** ((now - self.at) / RATE_HALF_LIFE)
        for name in self.per_second:
            self.per_second[name] *= decay
        self.at = now
        for name, milli in amounts.items():
            # Each take adds its amount spread over one half-life: a steady rate converges to itself.
            self.per_second[name] = self.per_second.get(name, 0.0) + milli * _PER_TAKE

    def of(self, name: str, window: float) -> float:
        """The rate of limit `name`: the average above, divided by the weight of the time it covers
        (at least `window`) as a whole half-life-weighted history would have."""
        covered = max(self.at - self.since, window)
        return self.per_second.get(name, 0.0) / (1.0 - 0.5 ** (covered / RATE_HALF_LIFE))
