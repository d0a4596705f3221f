"""`RateLimiter`: the asyncio runtime API. Every decision is in flows.py; calls run off the event loop."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Generator, Mapping, Sequence

from . import entities, stored_limits, usage
from .errors import RateLimiterUnavailable
from .lease import AsyncAcquire, unavailable_policy
from .limiter_base import LimiterBase
from .limits import Limit
from .models import Entity, UsageSnapshot
from .schema import DEFAULT_RESOURCE
from .transport import AsyncTransport, run_async
from .usage import UsageSummary


class RateLimiter(LimiterBase):
    """Asynchronous rate limiter. One instance is safe to share between tasks."""

    _transport: AsyncTransport | None = None

    async def __aenter__(self) -> "RateLimiter":
        if self.stack_options is not None:
            # The engine runs for seconds to minutes: in a thread, so the event loop keeps serving.
            await asyncio.to_thread(self._ensure_stack)
        if self._transport is None:
            await asyncio.to_thread(self._open)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def _open(self) -> AsyncTransport:
        transport = self._transport
        if transport is None:
            # Creating the boto3 client reads config files: brief, once, and guarded like the sync driver.
            with self._open_lock:
                if self._transport is None:
                    self._transport = AsyncTransport(self._new_transport())
                transport = self._transport
        return transport

    async def close(self) -> None:
        self.release()

    def release(self) -> None:
        """Close the clients without awaiting (for finalisers and sync fixtures); `close()` does the same."""
        with self._open_lock:
            transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    async def delete_stack(self) -> None:
        """Destroy the limiter's Pulumi stack (the table and its data included) and remove it from the backend."""
        await asyncio.to_thread(self._delete_stack)

    async def _run(self, flow: Generator) -> Any:
        # Opening builds the boto3 client and resolves credentials (files, maybe the network): off the loop.
        return await run_async(flow, self._transport or await asyncio.to_thread(self._open))

    async def _guarded(self, flow: Generator, phase: str) -> Any:
        try:
            return await self._run(flow)
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
    ) -> AsyncAcquire:
        """`async with limiter.acquire(...) as lease:` takes `consume` from every limit before the block
        runs, and gives it all back if the block raises. Raises RateLimitExceeded (nothing taken) when short.
        `also={"embeddings": {"rpm": 1}}` takes from other resources in the same all-or-nothing write."""
        return AsyncAcquire(self, entity_id, resource, limits, consume, also)

    async def available(self, entity_id: str, resource: str, limits: Sequence[Limit] | None = None) -> dict[str, float]:
        return await self._run(self._core.available(entity_id, resource, limits))

    async def time_until_available(
        self, entity_id: str, resource: str, needed: Mapping[str, float], limits: Sequence[Limit] | None = None
    ) -> float:
        return await self._run(self._core.time_until_available(entity_id, resource, needed, limits))

    # -- entities -----------------------------------------------------------------------------
    async def create_entity(
        self,
        entity_id: str,
        name: str | None = None,
        parent_id: str | None = None,
        cascade: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> Entity:
        return await self._run(entities.create_entity(self._core, entity_id, name, parent_id, cascade, metadata))

    async def get_entity(self, entity_id: str) -> Entity:
        return await self._run(entities.get_entity(self._core, entity_id))

    async def delete_entity(self, entity_id: str) -> None:
        return await self._run(entities.delete_entity(self._core, entity_id))

    async def get_children(self, parent_id: str) -> list[Entity]:
        return await self._run(entities.get_children(self._core, parent_id))

    # -- stored limits ------------------------------------------------------------------------
    async def set_limits(self, entity_id: str, limits: Sequence[Limit], resource: str = DEFAULT_RESOURCE) -> None:
        await self._run(stored_limits.put_limits(self._core, stored_limits.entity_key(entity_id, resource), limits))

    async def get_limits(self, entity_id: str, resource: str = DEFAULT_RESOURCE) -> list[Limit]:
        return await self._run(stored_limits.read_limits(self._core, stored_limits.entity_key(entity_id, resource)))

    async def delete_limits(self, entity_id: str, resource: str = DEFAULT_RESOURCE) -> None:
        await self._run(stored_limits.remove_limits(self._core, stored_limits.entity_key(entity_id, resource)))

    async def set_resource_defaults(self, resource: str, limits: Sequence[Limit]) -> None:
        await self._run(stored_limits.put_limits(self._core, stored_limits.resource_key(resource), limits))

    async def get_resource_defaults(self, resource: str) -> list[Limit]:
        return await self._run(stored_limits.read_limits(self._core, stored_limits.resource_key(resource)))

    async def delete_resource_defaults(self, resource: str) -> None:
        await self._run(stored_limits.remove_limits(self._core, stored_limits.resource_key(resource)))

    async def set_system_defaults(self, limits: Sequence[Limit]) -> None:
        await self._run(stored_limits.put_limits(self._core, stored_limits.system_key(), limits))

    async def get_system_defaults(self) -> list[Limit]:
        return await self._run(stored_limits.read_limits(self._core, stored_limits.system_key()))

    async def delete_system_defaults(self) -> None:
        await self._run(stored_limits.remove_limits(self._core, stored_limits.system_key()))

    # -- usage (snapshots written by the aggregator) -------------------------------------------
    async def get_usage_snapshots(
        self,
        entity_id: str | None = None,
        resource: str | None = None,
        window: str = "hourly",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[UsageSnapshot]:
        """Snapshots of one window size whose window_start is in [start, end), oldest first."""
        return await self._run(usage.get_usage_snapshots(self._core, entity_id, resource, window, start, end))

    async def get_usage_summary(
        self,
        entity_id: str | None = None,
        resource: str | None = None,
        window: str = "hourly",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> UsageSummary:
        """Totals per limit over the snapshots get_usage_snapshots returns for the same arguments."""
        return await self._run(usage.get_usage_summary(self._core, entity_id, resource, window, start, end))
