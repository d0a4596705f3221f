"""The instructions a flow yields to its driver, and the errors a transport raises into a flow.

Flows (see `flows.py`) are generators: they yield a `Call`, `Parallel` or `Sleep`, and receive the
response (or have the transport's exception thrown in). The sync and async drivers only execute them,
so both APIs share every decision.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any, Generator, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """One DynamoDB request in wire format (typed attribute values), as boto3's low-level client takes it."""

    operation: str
    request: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Parallel:
    """Several independent calls; the flow receives a list of responses or exceptions, in order."""

    calls: tuple[Call, ...]


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


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
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # that loop has closed: nobody is waiting there any more
                pass

    def wait(self, timeout: float) -> None:
        self._event.wait(timeout)

    async def wait_async(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._event.is_set():
                return
            self._waiters.append((loop, future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass


def _resolve(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


@dataclass(frozen=True, slots=True)
class Await:
    """Wait until `gate` opens, at most `timeout` seconds."""

    gate: Gate
    timeout: float


Instruction = Call | Parallel | Sleep | Await
Flow = Generator[Instruction, Any, T]


class ConditionFailed(Exception):
    """A conditional write was refused; `item` is the item as it stood (ALL_OLD), if returned."""

    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("conditional check failed")
        self.item = item


class TransactionCanceled(Exception):
    """A transaction was cancelled; one (code, item) per action, code 'None' where that action passed."""

    def __init__(self, reasons: list[tuple[str, dict[str, Any] | None]]) -> None:
        super().__init__("transaction cancelled: " + ", ".join(code for code, _ in reasons))
        self.reasons = reasons
