"""Counting what the limiter asks of DynamoDB: requests per operation and, when asked, consumed capacity.

`limiter.stats` is always on (a counter per request); capacity needs `ReturnConsumedCapacity` on every
request, so it is opt-in (`RateLimiter(..., track_capacity=True)`). The benchmark reads both."""

from __future__ import annotations

import threading
from typing import Any

READ_OPERATIONS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})


class RequestStats:
    def __init__(self, track_capacity: bool = False, reservoirs: Any = None, views: Any = None) -> None:
        self.track_capacity = track_capacity
        self._reservoirs = reservoirs  # reservoirs.Reservoirs: local admissions and tokens held
        self._views = views  # bucket_views.BucketViews: acquires admitted by another's write
        self._combined_before = 0  # the views' count at the last reset
        self._lock = threading.Lock()
        self.requests: dict[str, int] = {}
        self.read_units = 0.0
        self.write_units = 0.0
        #: Admitted acquires that went past a soft limit, by limit name (each would have been refused).
        self.soft_overdraws: dict[str, int] = {}

    def count(self, operation: str) -> None:
        with self._lock:
            self.requests[operation] = self.requests.get(operation, 0) + 1

    def add_capacity(self, operation: str, consumed: Any) -> None:
        """`consumed` is the response's ConsumedCapacity: one dict, or a list (transactions, batches)."""
        if not consumed:
            return
        entries = consumed if isinstance(consumed, list) else [consumed]
        units = sum(float(entry.get("CapacityUnits", 0)) for entry in entries)
        with self._lock:
            if operation in READ_OPERATIONS:
                self.read_units += units
            else:
                self.write_units += units

    def count_overdrawn(self, names: tuple[str, ...]) -> None:
        with self._lock:
            for name in names:
                self.soft_overdraws[name] = self.soft_overdraws.get(name, 0) + 1

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "total_requests": sum(self.requests.values()),
                "read_units": self.read_units,
                "write_units": self.write_units,
                "soft_overdraws": dict(self.soft_overdraws),
                "combined_acquires": self._combined() - self._combined_before,
                **self._reservoir_figures(),
            }

    def _combined(self) -> int:
        return self._views.combined if self._views is not None else 0

    def _reservoir_figures(self) -> dict[str, Any]:
        if self._reservoirs is None or not self._reservoirs.enabled:
            return {}
        return {"local_admissions": self._reservoirs.local_admissions, "reserved_tokens": self._reservoirs.held_tokens()}

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.read_units = 0.0
            self.write_units = 0.0
            self.soft_overdraws.clear()
            self._combined_before = self._combined()
