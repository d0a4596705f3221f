"""`SyncRateLimiter`: the runtime API for threaded code. Every decision is in flows.py."""

from __future__ import annotations

from typing import Any, Generator, Mapping, Sequence

from .core.errors import RateLimiterUnavailable
from .lease import SyncAcquire, unavailable_policy
from .limiter_base import LimiterBase
from .operations import Operations
from .core.limits import Limit
from .transport.boto3_path import Boto3Transport
from .transport.drivers import run_sync


class SyncRateLimiter(Operations, LimiterBase):
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
            self._start_returner()
        return transport

    def _run_blocking(self, flow: Generator) -> Any:
        return self._run(flow)

    def close(self) -> None:
        """Give back any reserves (reservoir_seconds), then close the clients."""
        if self._transport is not None:
            self._return_all_reserves()
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
