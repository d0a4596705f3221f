"""`SyncRateLimiter`: the runtime API for threaded code. Every decision is in flows.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generator, Mapping, Sequence

from . import entities, stored_limits, usage
from .errors import RateLimiterUnavailable
from .lease import SyncAcquire, unavailable_policy
from .limiter_base import LimiterBase
from .limits import Limit
from .models import Entity, UsageSnapshot
from .schema import DEFAULT_RESOURCE
from .transport import Boto3Transport, run_sync
from .usage import UsageSummary


class SyncRateLimiter(LimiterBase):
    """Synchronous rate limiter. One instance is safe to share between threads."""

    _transport: Boto3Transport | None = None

    def __enter__(self) -> "SyncRateLimiter":
        self._ensure_stack()
        self._open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _open(self) -> Boto3Transport:
        transport = self._transport
        if transport is None:
            with self._open_lock:
                if self._transport is None:
                    self._transport = self._new_transport()
                transport = self._transport
        return transport

    def close(self) -> None:
        with self._open_lock:
            transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    def delete_stack(self) -> None:
        """Destroy the limiter's Pulumi stack (the table and its data included) and remove it from the backend."""
        self._delete_stack()

    def _run(self, flow: Generator) -> Any:
        return run_sync(flow, self._transport or self._open())

    def _guarded(self, flow: Generator, phase: str) -> Any:
        try:
            return self._run(flow)
        except RateLimiterUnavailable as error:
            unavailable_policy(self.on_unavailable, phase, error, self._count_unavailable)
            return None

    # -- rate limiting ------------------------------------------------------------------------
    def acquire(
        self,
        entity_id: str,
        resource: str,
        limits: Sequence[Limit] | None = None,
        *,
        consume: Mapping[str, float],
        also: Mapping[str, Mapping[str, float]] | None = None,
    ) -> SyncAcquire:
        """`with limiter.acquire(...) as lease:` takes `consume` from every limit before the block runs,
        and gives it all back if the block raises. Raises RateLimitExceeded (nothing taken) when short.
        `also={"embeddings": {"rpm": 1}}` takes from other resources in the same all-or-nothing write."""
        return SyncAcquire(self, entity_id, resource, limits, consume, also)

    def available(self, entity_id: str, resource: str, limits: Sequence[Limit] | None = None) -> dict[str, float]:
        return self._run(self._core.available(entity_id, resource, limits))

    def time_until_available(
        self, entity_id: str, resource: str, needed: Mapping[str, float], limits: Sequence[Limit] | None = None
    ) -> float:
        return self._run(self._core.time_until_available(entity_id, resource, needed, limits))

    # -- entities -----------------------------------------------------------------------------
    def create_entity(
        self,
        entity_id: str,
        name: str | None = None,
        parent_id: str | None = None,
        cascade: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> Entity:
        return self._run(entities.create_entity(self._core, entity_id, name, parent_id, cascade, metadata))

    def get_entity(self, entity_id: str) -> Entity:
        return self._run(entities.get_entity(self._core, entity_id))

    def delete_entity(self, entity_id: str) -> None:
        return self._run(entities.delete_entity(self._core, entity_id))

    def get_children(self, parent_id: str) -> list[Entity]:
        return self._run(entities.get_children(self._core, parent_id))

    # -- stored limits ------------------------------------------------------------------------
    def set_limits(self, entity_id: str, limits: Sequence[Limit], resource: str = DEFAULT_RESOURCE) -> None:
        self._run(stored_limits.put_limits(self._core, stored_limits.entity_key(entity_id, resource), limits))

    def get_limits(self, entity_id: str, resource: str = DEFAULT_RESOURCE) -> list[Limit]:
        return self._run(stored_limits.read_limits(self._core, stored_limits.entity_key(entity_id, resource)))

    def delete_limits(self, entity_id: str, resource: str = DEFAULT_RESOURCE) -> None:
        self._run(stored_limits.remove_limits(self._core, stored_limits.entity_key(entity_id, resource)))

    def set_resource_defaults(self, resource: str, limits: Sequence[Limit]) -> None:
        self._run(stored_limits.put_limits(self._core, stored_limits.resource_key(resource), limits))

    def get_resource_defaults(self, resource: str) -> list[Limit]:
        return self._run(stored_limits.read_limits(self._core, stored_limits.resource_key(resource)))

    def delete_resource_defaults(self, resource: str) -> None:
        self._run(stored_limits.remove_limits(self._core, stored_limits.resource_key(resource)))

    def set_system_defaults(self, limits: Sequence[Limit]) -> None:
        self._run(stored_limits.put_limits(self._core, stored_limits.system_key(), limits))

    def get_system_defaults(self) -> list[Limit]:
        return self._run(stored_limits.read_limits(self._core, stored_limits.system_key()))

    def delete_system_defaults(self) -> None:
        self._run(stored_limits.remove_limits(self._core, stored_limits.system_key()))

    # -- usage (snapshots written by the aggregator) -------------------------------------------
    def get_usage_snapshots(
        self,
        entity_id: str | None = None,
        resource: str | None = None,
        window: str = "hourly",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[UsageSnapshot]:
        """Snapshots of one window size whose window_start is in [start, end), oldest first."""
        return self._run(usage.get_usage_snapshots(self._core, entity_id, resource, window, start, end))

    def get_usage_summary(
        self,
        entity_id: str | None = None,
        resource: str | None = None,
        window: str = "hourly",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> UsageSummary:
        """Totals per limit over the snapshots get_usage_snapshots returns for the same arguments."""
        return self._run(usage.get_usage_summary(self._core, entity_id, resource, window, start, end))
