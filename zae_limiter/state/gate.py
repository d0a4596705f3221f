"""`Gate`: how one flow waits for another's request (calls.Await), in either driver, without polling."""

from __future__ import annotations

import asyncio
import threading

from . import deadlines as coalesced


class Gate:
    """Opened once; sync waiters block on an Event, async waiters on a future of their own loop. Lets a
    flow wait for another flow's request without either driver polling."""

    def __init__(self) -> None:
        # Held while shut; sync waiters take it and pass it on at once, so opening wakes every one of
        # them. A bare lock, not a threading.Event: under concurrency every acquire is a hand-off, and an
        # Event's Condition costs a Python-level waiter lock and deque per wait.
        self._shut = threading.Lock()
        self._shut.acquire()
        self._opened = False
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def opened(self) -> bool:
        return self._opened

    def open(self) -> None:
        with self._lock:
            if self._opened:
                return
            self._opened = True
            self._shut.release()
            waiters, self._waiters = self._waiters, []
        if not waiters:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, future in waiters:
            if loop is running:
                # The waiter's own loop, on its own thread: wake it directly. Through
                # call_soon_threadsafe it would cost a write to the loop's self-pipe and one more
                # turn of the loop per hand-off, and under concurrency every acquire is one.
                _resolve(future)
                continue
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # that loop has closed: nobody is waiting there any more
                pass

    def wait(self, timeout: float) -> None:
        """Until the gate opens or `timeout` passes, whichever is first (neither raises)."""
        if self._opened:
            return
        if self._shut.acquire(timeout=timeout):
            self._shut.release()  # the next waiter's turn

    async def wait_async(self, timeout: float) -> None:
        """Until the gate opens or `timeout` passes (up to deadlines.GRAIN later), whichever is first
        (neither raises)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._opened:
                return
            self._waiters.append((loop, future))
        deadlines = coalesced.of(loop)
        when = deadlines.add(timeout, future, _resolve)  # a shared timer, not one per wait
        try:
            await future
        finally:
            deadlines.remove(when, future)


def _resolve(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)
