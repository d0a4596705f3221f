"""`Gate`: how one flow waits for another's request (calls.Await), in either driver, without polling."""

from __future__ import annotations

import asyncio
import threading


class Gate:
    """Opened once; sync waiters block on an Event, async waiters on a future of their own loop. Lets a
    flow wait for another flow's request without either driver polling."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def open(self) -> None:
        with self._lock:
            self._event.set()
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
        self._event.wait(timeout)

    async def wait_async(self, timeout: float) -> None:
        """Until the gate opens or `timeout` passes, whichever is first (neither raises)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._event.is_set():
                return
            self._waiters.append((loop, future))
        # One timer handle, not asyncio.wait_for's timer, callback and second future.
        expiry = loop.call_later(timeout, _resolve, future)
        try:
            await future
        finally:
            expiry.cancel()


def _resolve(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)
