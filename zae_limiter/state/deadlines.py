"""Coalesced deadlines for the asyncio waits of the hot path: a request's read timeout, a queued
acquire's wait for the write ahead of it. Every async acquire waits with a timeout, and one loop timer
per wait (asyncio.timeout, wait_for, call_later) costs a timer handle, a heap push and a cancelled
entry left in the loop's heap; under concurrency that was a tenth of the client's CPU. So deadlines are
rounded up to GRAIN and share one timer per rounded instant: a wait may end up to GRAIN after its
timeout, never before it."""

from __future__ import annotations

import asyncio
import math
import weakref
from typing import Any, Callable

GRAIN = 0.05  # seconds


class Deadlines:
    """The deadlines of one event loop; used only from that loop's thread."""

    __slots__ = ("loop", "_slots", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._slots: dict[float, tuple[asyncio.TimerHandle, dict[int, tuple[asyncio.Future[Any], Callable[[Any], None]]]]] = {}

    def add(self, timeout: float, future: "asyncio.Future[Any]", expire: Callable[["asyncio.Future[Any]"], None]) -> float:
        """Call `expire(future)` once `timeout` has passed (at most GRAIN later) unless removed first.
        Returns the key to remove it with."""
        when = math.ceil((self.loop.time() + timeout) / GRAIN) * GRAIN
        slot = self._slots.get(when)
        if slot is None:
            slot = self._slots[when] = (self.loop.call_at(when, self._fire, when), {})
        slot[1][id(future)] = (future, expire)
        return when

    def remove(self, when: float, future: "asyncio.Future[Any]") -> None:
        slot = self._slots.get(when)
        if slot is None:
            return
        waiters = slot[1]
        waiters.pop(id(future), None)
        if not waiters:  # nobody left at that instant: its timer goes too
            slot[0].cancel()
            del self._slots[when]

    def _fire(self, when: float) -> None:
        slot = self._slots.pop(when, None)
        if slot is None:
            return
        for future, expire in list(slot[1].values()):
            expire(future)


_BY_LOOP: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines]" = weakref.WeakKeyDictionary()


def of(loop: asyncio.AbstractEventLoop) -> Deadlines:
    """The deadlines of `loop` (made on first use; they go with the loop)."""
    deadlines = _BY_LOOP.get(loop)
    if deadlines is None:
        deadlines = _BY_LOOP[loop] = Deadlines(loop)
    return deadlines
