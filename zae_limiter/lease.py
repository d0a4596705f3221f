"""Leases and the acquire context managers, sync and async. The decisions live in flows.py."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from .core.errors import RateLimiterUnavailable
from .state.limiter_core import LeaseState
from .transport.deferral import deferring

if TYPE_CHECKING:
    from .limiter import RateLimiter
    from .sync_limiter import SyncRateLimiter

log = logging.getLogger("zae_limiter")


class _LeaseView:
    def __init__(self, entity_id: str, resource: str, state: LeaseState | None) -> None:
        self.entity_id = entity_id
        self.resource = resource
        self._state = state

    @property
    def unchecked(self) -> bool:
        """True when DynamoDB was unavailable and `on_unavailable="allow"` let the call through unrecorded."""
        return self._state is None

    @property
    def consumed(self) -> dict[str, float]:
        """What this lease has taken so far of its own resource, per limit (initial amount plus adjustments)."""
        return self.consumed_in(self.resource)

    def consumed_in(self, resource: str) -> dict[str, float]:
        """What this lease has taken so far of `resource` (the acquire's own, or one of `also`)."""
        if self._state is None or resource not in self._state.resources:
            return {}
        return {name: milli / 1000 for name, milli in self._state.consumed_in(resource).items()}

    @property
    def resources(self) -> tuple[str, ...]:
        """The resources this lease holds: the acquire's own, then those of `also`."""
        return self._state.resources if self._state is not None else (self.resource,)

    @property
    def overdrawn(self) -> list[str]:
        """The soft limits this acquire went past (each would have refused it, had it been hard)."""
        return list(self._state.overdrawn) if self._state is not None else []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(entity_id={self.entity_id!r}, resource={self.resource!r}, consumed={self.consumed})"


class Lease(_LeaseView):
    """Held inside `async with limiter.acquire(...) as lease`."""

    def __init__(self, limiter: "RateLimiter", entity_id: str, resource: str, state: LeaseState | None) -> None:
        super().__init__(entity_id, resource, state)
        self._limiter = limiter

    async def adjust(self, resource: str | None = None, **deltas: float) -> None:
        """Add (positive) or give back (negative) consumption of the lease's resource, or of `resource`
        (one of `also`). Never rejected: may drive a bucket into debt."""
        if self._state is None:
            return
        await self._limiter._guarded(self._limiter._core.adjust(self._state, deltas, resource), "adjust")


class SyncLease(_LeaseView):
    """Held inside `with limiter.acquire(...) as lease`."""

    def __init__(self, limiter: "SyncRateLimiter", entity_id: str, resource: str, state: LeaseState | None) -> None:
        super().__init__(entity_id, resource, state)
        self._limiter = limiter

    def adjust(self, resource: str | None = None, **deltas: float) -> None:
        """Add (positive) or give back (negative) consumption of the lease's resource, or of `resource`
        (one of `also`). Never rejected: may drive a bucket into debt."""
        if self._state is None:
            return
        self._limiter._guarded(self._limiter._core.adjust(self._state, deltas, resource), "adjust")


def _log_refund_failure(entity_id: str, resource: str, error: BaseException) -> None:
    log.error("zae-limiter: refund of a lease on %s/%s failed: %s", entity_id, resource, error, exc_info=error)


class AsyncAcquire:
    def __init__(self, limiter: "RateLimiter", entity_id: str, resource: str, limits: Any, consume: Any,
                 also: Any = None) -> None:
        self._limiter = limiter
        self._args = (entity_id, resource, limits, consume, also)
        self._lease: Lease | None = None

    async def __aenter__(self) -> Lease:
        entity_id, resource, limits, consume, also = self._args
        flow = self._limiter._core.acquire(entity_id, resource, limits, consume, also)
        metrics = self._limiter.metrics
        if metrics is None:
            state = await self._limiter._guarded(flow, "acquire")
        else:
            started = time.perf_counter()
            try:
                state = await self._limiter._guarded(flow, "acquire")
            except BaseException as error:
                metrics.on_acquire_error(resource, error, time.perf_counter() - started)
                raise
            metrics.on_acquire(resource, state, time.perf_counter() - started)
        if state is not None and state.overdrawn:
            self._limiter._count_overdrawn(resource, state.overdrawn)
        self._lease = Lease(self._limiter, entity_id, resource, state)
        return self._lease

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        state = self._lease._state if self._lease else None
        if exc is not None and state is not None:
            # In this task, under a deferral (transport/deferral.py): a cancellation that arrives while
            # the refund runs does not cut it off (its write would then be of unknown outcome); it waits
            # for the refund to end, and never replaces the caller's exception.
            with deferring():
                try:
                    await self._limiter._guarded(self._limiter._core.refund(state), "refund")
                except asyncio.CancelledError:
                    pass  # a wait its owner cancelled (deferral.outlast): the refund has ended either way
                except Exception as error:  # never mask the caller's exception
                    _log_refund_failure(state.entity_id, state.resource, error)
        return False


class SyncAcquire:
    def __init__(self, limiter: "SyncRateLimiter", entity_id: str, resource: str, limits: Any, consume: Any,
                 also: Any = None) -> None:
        self._limiter = limiter
        self._args = (entity_id, resource, limits, consume, also)
        self._lease: SyncLease | None = None

    def __enter__(self) -> SyncLease:
        entity_id, resource, limits, consume, also = self._args
        flow = self._limiter._core.acquire(entity_id, resource, limits, consume, also)
        metrics = self._limiter.metrics
        if metrics is None:
            state = self._limiter._guarded(flow, "acquire")
        else:
            started = time.perf_counter()
            try:
                state = self._limiter._guarded(flow, "acquire")
            except BaseException as error:
                metrics.on_acquire_error(resource, error, time.perf_counter() - started)
                raise
            metrics.on_acquire(resource, state, time.perf_counter() - started)
        if state is not None and state.overdrawn:
            self._limiter._count_overdrawn(resource, state.overdrawn)
        self._lease = SyncLease(self._limiter, entity_id, resource, state)
        return self._lease

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        state = self._lease._state if self._lease else None
        if exc is not None and state is not None:
            try:
                self._limiter._guarded(self._limiter._core.refund(state), "refund")
            except Exception as error:  # never mask the caller's exception
                _log_refund_failure(state.entity_id, state.resource, error)
        return False


def unavailable_policy(on_unavailable: str, phase: str, error: RateLimiterUnavailable, count: Callable[[str], None]) -> None:
    """Decide what an unavailable DynamoDB means for the caller: re-raise ("block") or let it through,
    counted and logged ("allow")."""
    if on_unavailable != "allow":
        raise error
    count(phase)
    log.warning("zae-limiter: DynamoDB unavailable during %s, allowed by policy: %s", phase, error)
