"""Coalesced deadlines for the asyncio waits of the hot path: a request's read timeout, a queued
acquire's wait for the write ahead of it. Every async acquire waits with a timeout, and one loop timer
per wait (asyncio.timeout, wait_for, call_later) costs a timer handle, a heap push and a cancelled
entry left in the loop's heap; under concurrency that was a tenth of the client's CPU. So deadlines are
rounded up to GRAIN and kept in slots, one per rounded instant, and a wait may end up to GRAIN after
its timeout, never before it.

Slots are watched by timers that are never cancelled: a wait that ends in time only leaves its slot.
A timer is armed only where no armed timer comes earlier, and when one fires it expires the slots due
and arms one more for the earliest slot left. So one acquire after another (each wait ending long
before its timeout) arms one timer per read timeout, not one per request, and the loop wakes for it
once in that time; a loop with no slot left arms nothing more."""

from __future__ import annotations

import asyncio
import math
import weakref
from typing import Any, Callable

GRAIN = 0.05  # seconds


class Deadlines:
    """The deadlines of one event loop; used only from that loop's thread. It holds its loop weakly: its
    timers sit in the loop's heap, and a strong reference back would keep every closed loop alive."""

    __slots__ = ("_loop", "_slots", "_armed", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)
        self._slots: dict[float, dict[int, tuple[asyncio.Future[Any], Callable[[Any], None]]]] = {}
        self._armed: set[float] = set()  # the instants of the timers still to fire

    def add(self, timeout: float, future: "asyncio.Future[Any]", expire: Callable[["asyncio.Future[Any]"], None]) -> float:
        """Call `expire(future)` once `timeout` has passed (at most GRAIN later) unless removed first.
        Returns the key to remove it with."""
        when = math.ceil((self._loop().time() + timeout) / GRAIN) * GRAIN  # type: ignore[union-attr]
        slot = self._slots.get(when)
        if slot is None:
            slot = self._slots[when] = {}
            self._cover(when)
        slot[id(future)] = (future, expire)
        return when

    def remove(self, when: float, future: "asyncio.Future[Any]") -> None:
        slot = self._slots.get(when)
        if slot is None:
            return
        slot.pop(id(future), None)
        if not slot:
            del self._slots[when]

    def __len__(self) -> int:
        """The waits still pending."""
        return sum(len(slot) for slot in self._slots.values())

    def armed(self) -> int:
        """The timers still to fire."""
        return len(self._armed)

    def _cover(self, when: float) -> None:
        """Every slot has an armed timer at or before its instant."""
        if not self._armed or min(self._armed) > when:
            self._armed.add(when)
            self._loop().call_at(when, self._fire, when)  # type: ignore[union-attr]

    def _fire(self, at: float) -> None:
        self._armed.discard(at)
        due = [when for when in self._slots if when <= at]
        for when in due:
            for future, expire in list(self._slots.pop(when).values()):
                expire(future)
        if self._slots:
            self._cover(min(self._slots))


_BY_LOOP: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines]" = weakref.WeakKeyDictionary()


def of(loop: asyncio.AbstractEventLoop) -> Deadlines:
    """The deadlines of `loop` (made on first use; they go with the loop)."""
    deadlines = _BY_LOOP.get(loop)
    if deadlines is None:
        deadlines = _BY_LOOP[loop] = Deadlines(loop)
    return deadlines
