"""Plain records the API returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping, Optional


@dataclass(frozen=True)
class Entity:
    entity_id: str
    name: Optional[str] = None
    parent_id: Optional[str] = None
    cascade: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    created_at: Optional[datetime] = None


def milli_of(counters: Mapping[str, float]) -> dict[str, int]:
    """Token amounts as whole thousandths (the unit every counter is stored in)."""
    return {name: round(value * 1000) for name, value in counters.items()}


def tokens_of(milli: Mapping[str, int]) -> dict[str, float]:
    """Whole thousandths as token amounts, for display: the float nearest each exact value."""
    return {name: value / 1000 for name, value in milli.items()}


@dataclass(frozen=True)
class UsageSnapshot:
    """Usage of one (entity, resource) over one window, as the aggregator recorded it.

    `counters_milli` holds the exact sums, in thousandths of a token, as stored; `counters` the same in
    tokens, as floats, for display (a float keeps every thousandth exactly only below about 9e12
    tokens). Sums over snapshots (`get_usage_summary`) are made from `counters_milli`."""

    entity_id: str
    resource: str
    window: str
    window_start: datetime
    counters: dict[str, float]
    events: int
    counters_milli: dict[str, int] = None  # type: ignore[assignment]  # derived from `counters` when not given

    def __post_init__(self) -> None:
        if self.counters_milli is None:
            object.__setattr__(self, "counters_milli", milli_of(self.counters))
