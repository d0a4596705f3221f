"""The seam between the flows and I/O: what a transport offers the drivers (drivers.py). Two exist:
`boto3_path.Boto3Transport` (the lean data plane for the hot operations, boto3 for the rest) and its
asyncio face, `boto3_path.AsyncTransport`. A test double, or another store, needs only this."""

from __future__ import annotations

from typing import Any, Callable, Protocol

from ..core.calls import Call


class Transport(Protocol):
    """Sends one DynamoDB call in wire format and returns the answer, or raises what the answer means
    (core/answers.py: ConditionFailed, TransactionCanceled, StorageError, RateLimiterUnavailable)."""

    observers: list[Callable[[Call], None]]

    def call(self, call: Call) -> dict[str, Any]: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    """The same, awaited on the event loop, never blocking it."""

    async def call(self, call: Call) -> dict[str, Any]: ...

    def close(self) -> None: ...
