"""A section of a task that a cancellation cannot cut short: it is held until the section ends.

The async refund runs in its caller's task inside one (lease.py). A write cut off by a cancellation is of
unknown outcome, and a refund is never sent twice, so a cancelled refund could leave its tokens charged
until refill. A task of its own behind `asyncio.shield` kept it whole from its caller's cancellation,
but it outlived the caller (`asyncio.run` cancels the tasks left at its end, and with them such a
refund's write), and cost three more turns of the event loop per refund (2% of the client CPU of an
acquire and its refund back to back, 11% with 11 ms pauses between them: docs/benchmarks.md).

Under a deferral every await of the async drivers outlasts a cancellation:
- an answer awaited on a lean connection is a future that refuses to be cancelled (`answer_future`), so
  the exchange ends as it would have (the task is told of the cancellation only once the answer is in,
  and `held_answer` takes the answer anyway);
- a future of another kind (a boto3 call on its thread, a Parallel's requests, a sleep) is awaited to
  its end under `asyncio.shield`, whatever arrives meanwhile (`outlast`);
- a transport raises `CancelledError` only where nothing left (connecting, refreshing credentials, a
  backoff after a refused attempt), so the driver sends that call again (`call_whole`).
A cancellation held this way is not raised again: the caller's own exception, which the refund was
for, is what goes on (lease.py)."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Awaitable, Iterator

from ..core.errors import RateLimiterUnavailable

_ACTIVE: ContextVar[bool] = ContextVar("zae_limiter_deferral", default=False)


def active() -> bool:
    """Whether the current task is in a deferral."""
    return _ACTIVE.get()


@contextmanager
def deferring() -> Iterator[None]:
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


async def outlast(awaitable: Awaitable[Any]) -> Any:
    """`awaitable` to its end, however many cancellations arrive meanwhile. One cancelled by its own
    owner (an executor shut down with the limiter) still ends in CancelledError."""
    future = asyncio.ensure_future(awaitable)
    while True:
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.cancelled():
                raise


# How many times a call cut off before it left is sent again. A bound, because CPython before 3.11.3
# (gh-102780) turns an `asyncio.timeout` that expires in a task already cancelled into CancelledError, not
# TimeoutError: a connect timing out would then look like one more cancellation, every time.
RESENDS = 3


async def call_whole(transport: Any, call: Any) -> Any:
    """`transport.call(call)`, sent again when a cancellation cut it off: under a deferral a transport
    raises CancelledError only before its request left (connecting, refreshing credentials, a backoff
    after a refused attempt). RateLimiterUnavailable after RESENDS of them."""
    for _ in range(RESENDS + 1):
        try:
            return await transport.call(call)
        except asyncio.CancelledError:
            continue
    raise RateLimiterUnavailable(f"DynamoDB {call.operation}: cut off {RESENDS + 1} times before it left; not sent")


class _HeldAnswer(asyncio.Future):
    """The future of an answer that a cancellation does not cancel. (The task then raises
    CancelledError at its await once the answer is in: see `held_answer`.)"""

    def cancel(self, msg: Any = None) -> bool:
        return False


def answer_future(loop: asyncio.AbstractEventLoop) -> "asyncio.Future[Any]":
    """The future an exchange awaits its answer on: a plain one, or one that outlasts a cancellation."""
    return _HeldAnswer(loop=loop) if _ACTIVE.get() else loop.create_future()


def held_answer(waiter: "asyncio.Future[Any]") -> bool:
    """Whether a CancelledError raised at `await waiter` was held for a deferral: the waiter has its
    outcome, which stands (its result, or its exception, is what the exchange ends with)."""
    return isinstance(waiter, _HeldAnswer) and waiter.done()
