"""Plain records the API returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Optional


@dataclass(frozen=True)
class Entity:
    entity_id: str
    name: Optional[str] = None
    parent_id: Optional[str] = None
    cascade: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    created_at: Optional[datetime] = None


@dataclass(frozen=True)
class UsageSnapshot:
    """Usage of one (entity, resource) over one window, as the aggregator recorded it."""

    entity_id: str
    resource: str
    window: str
    window_start: datetime
    counters: dict[str, float]
    events: int
