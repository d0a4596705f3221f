"""The limiters' methods besides acquire, written once for both APIs.

Each method builds its flow and hands it to `self._run`: `SyncRateLimiter._run` runs it and returns the
value; `RateLimiter._run` is a coroutine function, so on the async limiter each method returns an
awaitable (`await limiter.set_limits(...)`). The decisions are in the flows; nothing here does I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generator, Mapping, Sequence

from .core import bucket_controls, entities, stored_limits, usage
from .state.limiter_core import LimiterCore
from .core.limits import Limit
from .core.schema import DEFAULT_RESOURCE


class Operations:
    _core: LimiterCore

    def _run(self, flow: Generator) -> Any:  # pragma: no cover - each limiter defines its driver
        raise NotImplementedError

    # -- reading buckets ------------------------------------------------------------------------
    def available(self, entity_id: str, resource: str, limits: Sequence[Limit] | None = None) -> Any:
        """Tokens available now per limit (negative while in debt) -> dict[str, float]."""
        return self._run(self._core.available(entity_id, resource, limits))

    def time_until_available(
        self, entity_id: str, resource: str, needed: Mapping[str, float], limits: Sequence[Limit] | None = None
    ) -> Any:
        """Seconds until `needed` could be taken, parent included -> float."""
        return self._run(self._core.time_until_available(entity_id, resource, needed, limits))

    def get_effective_limits(self, entity_id: str, resource: str, limits: Sequence[Limit] | None = None) -> Any:
        """The limits an acquire of (entity, resource) applies at the entity's level, by the precedence of
        stored limits (schedules as in force now) -> list[Limit]."""
        return self._run(self._core.effective_limits(entity_id, resource, limits))

    # -- entities -------------------------------------------------------------------------------
    def create_entity(
        self,
        entity_id: str,
        name: str | None = None,
        parent_id: str | None = None,
        cascade: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> Any:
        """-> Entity; an existing id raises EntityExistsError, a missing parent EntityNotFoundError."""
        return self._run(entities.create_entity(self._core, entity_id, name, parent_id, cascade, metadata))

    def get_entity(self, entity_id: str) -> Any:
        return self._run(entities.get_entity(self._core, entity_id))

    def delete_entity(self, entity_id: str) -> Any:
        return self._run(entities.delete_entity(self._core, entity_id))

    def get_children(self, parent_id: str) -> Any:
        return self._run(entities.get_children(self._core, parent_id))

    def set_parent(self, entity_id: str, parent_id: str | None, cascade: bool | None = None) -> Any:
        """Move an entity under `parent_id` (None: no parent) -> Entity. `cascade` None keeps the entity's
        setting. A move that would make an entity its own ancestor raises ValidationError."""
        return self._run(bucket_controls.set_parent(self._core, entity_id, parent_id, cascade))

    # -- disabling ------------------------------------------------------------------------------
    def disable(self, entity_id: str | None = None, resource: str | None = None) -> Any:
        """Refuse acquires on an entity (all its resources), a resource (all entities), or one (entity,
        resource) with ResourceDisabled, writing nothing, until `enable` with the same arguments."""
        return self._run(stored_limits.set_disabled(self._core, stored_limits.flag_key(entity_id, resource), True))

    def enable(self, entity_id: str | None = None, resource: str | None = None) -> Any:
        return self._run(stored_limits.set_disabled(self._core, stored_limits.flag_key(entity_id, resource), False))

    def is_disabled(self, entity_id: str | None = None, resource: str | None = None) -> Any:
        """Whether exactly this flag is set (-> bool; acquire also honours the wider flags)."""
        return self._run(stored_limits.read_disabled(self._core, stored_limits.flag_key(entity_id, resource)))

    # -- bucket controls ------------------------------------------------------------------------
    def reset(self, entity_id: str, resource: str) -> Any:
        """Fill the entity's bucket of `resource`: every limit back to capacity (usage counters stay)."""
        return self._run(bucket_controls.reset(self._core, entity_id, resource))

    def top_up(self, entity_id: str, resource: str, **amounts: float) -> Any:
        """Add tokens to named limits of the entity's bucket, each capped at capacity (stored limits)."""
        return self._run(bucket_controls.top_up(self._core, entity_id, resource, amounts))

    # -- stored limits --------------------------------------------------------------------------
    def set_limits(self, entity_id: str, limits: Sequence[Limit], resource: str = DEFAULT_RESOURCE,
                   schedule: Sequence[tuple[str, Sequence[Limit]]] | None = None) -> Any:
        """Store the entity's limits for `resource` (`_default_`: every resource without its own);
        `schedule=[(cron, limits), ...]` changes them at each cron time (UTC), the latest winning."""
        return self._run(stored_limits.put_limits(self._core, stored_limits.entity_key(entity_id, resource), limits, schedule))

    def get_limits(self, entity_id: str, resource: str = DEFAULT_RESOURCE) -> Any:
        return self._run(stored_limits.read_limits(self._core, stored_limits.entity_key(entity_id, resource)))

    def delete_limits(self, entity_id: str, resource: str = DEFAULT_RESOURCE) -> Any:
        return self._run(stored_limits.remove_limits(self._core, stored_limits.entity_key(entity_id, resource)))

    def set_resource_defaults(self, resource: str, limits: Sequence[Limit],
                              schedule: Sequence[tuple[str, Sequence[Limit]]] | None = None) -> Any:
        return self._run(stored_limits.put_limits(self._core, stored_limits.resource_key(resource), limits, schedule))

    def get_resource_defaults(self, resource: str) -> Any:
        return self._run(stored_limits.read_limits(self._core, stored_limits.resource_key(resource)))

    def delete_resource_defaults(self, resource: str) -> Any:
        return self._run(stored_limits.remove_limits(self._core, stored_limits.resource_key(resource)))

    def set_system_defaults(self, limits: Sequence[Limit],
                            schedule: Sequence[tuple[str, Sequence[Limit]]] | None = None) -> Any:
        return self._run(stored_limits.put_limits(self._core, stored_limits.system_key(), limits, schedule))

    def get_system_defaults(self) -> Any:
        return self._run(stored_limits.read_limits(self._core, stored_limits.system_key()))

    def delete_system_defaults(self) -> Any:
        return self._run(stored_limits.remove_limits(self._core, stored_limits.system_key()))

    def get_schedule(self, entity_id: str | None = None, resource: str | None = None) -> Any:
        """A level's schedule -> [(cron, [Limit, ...]), ...]: the entity's for `resource` (default
        `_default_`), the resource defaults' (resource only), or the system defaults' (neither)."""
        if entity_id is not None:
            key = stored_limits.entity_key(entity_id, resource or DEFAULT_RESOURCE)
        elif resource is not None:
            key = stored_limits.resource_key(resource)
        else:
            key = stored_limits.system_key()
        return self._run(stored_limits.read_schedule(self._core, key))

    # -- usage (snapshots written by the aggregator) ---------------------------------------------
    def get_usage_snapshots(
        self,
        entity_id: str | None = None,
        resource: str | None = None,
        window: str = "hourly",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Any:
        """Snapshots of one window size whose window_start is in [start, end), oldest first."""
        return self._run(usage.get_usage_snapshots(self._core, entity_id, resource, window, start, end))

    def get_usage_summary(
        self,
        entity_id: str | None = None,
        resource: str | None = None,
        window: str = "hourly",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Any:
        """Totals per limit over the snapshots get_usage_snapshots returns for the same arguments."""
        return self._run(usage.get_usage_summary(self._core, entity_id, resource, window, start, end))
