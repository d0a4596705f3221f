"""`RateLimiter`: the asyncio runtime API. Every decision is in flows.py; calls run off the event loop."""

from __future__ import annotations

import asyncio
from typing import Any, Generator, Mapping, Sequence

from .core.errors import RateLimiterUnavailable
from .lease import AsyncAcquire, unavailable_policy
from .limiter_base import LimiterBase
from .operations import Operations
from .core.limits import Limit
from .transport.boto3_path import AsyncTransport
from .transport import deferral
from .transport.drivers import run_async, run_sync


class RateLimiter(Operations, LimiterBase):
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
            self._start_returner()
        return transport

    def _run_blocking(self, flow: Generator) -> Any:
        """A flow run to completion on the sync side of the transport (the reserve-returning thread)."""
        transport = self._transport
        if transport is None:
            return None
        return run_sync(flow, transport.transport)

    async def close(self) -> None:
        """Give back any reserves (reservoir_seconds), then close the clients."""
        if self._transport is not None and self._core.reservoirs.enabled:
            await asyncio.to_thread(self._return_all_reserves)
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
        transport = self._transport
        if transport is None:  # closed meanwhile, or never opened; a refund's opening outlasts a cancellation
            opening = asyncio.to_thread(self._open)
            transport = await (deferral.outlast(opening) if deferral.active() else opening)
        return await run_async(flow, transport)

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
