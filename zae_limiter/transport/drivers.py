"""The two drivers: each runs a core flow (a generator of calls.Instruction) to its end through a
transport, one blocking, one on the event loop. They decide nothing; the flows decide everything."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Generator

from ..core.calls import Await, Call, Parallel, Sleep
from .base import AsyncTransport, Transport
from . import deferral


def run_sync(flow: Generator, transport: Transport) -> Any:
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            instruction = flow.throw(error) if error is not None else flow.send(send)
        except StopIteration as stop:
            return stop.value
        send, error = None, None
        try:
            if isinstance(instruction, Call):
                try:
                    send = transport.call(instruction)
                except Exception as exc:
                    error = exc
            elif isinstance(instruction, Parallel):
                results: list[Any] = []
                for call in instruction.calls:
                    try:
                        results.append(transport.call(call))
                    except Exception as exc:
                        results.append(exc)
                send = results
            elif isinstance(instruction, Sleep):
                time.sleep(instruction.seconds)
            elif isinstance(instruction, Await):
                instruction.gate.wait(instruction.timeout)
            else:  # pragma: no cover - a flow bug
                raise TypeError(f"unknown instruction {instruction!r}")
        except BaseException:
            _close(flow)
            raise


async def run_async(flow: Generator, transport: AsyncTransport) -> Any:
    # In a deferral (a refund, deferral.py) no cancellation cuts an instruction short.
    deferred = deferral.active()
    send: Any = None
    error: BaseException | None = None
    suspended = False
    while True:
        try:
            instruction = flow.throw(error) if error is not None else flow.send(send)
        except StopIteration as stop:
            if not (suspended or deferred):
                await asyncio.sleep(0)
            return stop.value
        except BaseException:
            if not (suspended or deferred):  # a deferral's flow is not in a caller's tight loop
                # A flow decided without I/O (a local rejection): still give the loop a turn, or a
                # caller retrying in a tight loop would starve every other task, this limiter's own
                # requests in flight included.
                await asyncio.sleep(0)
            raise
        send, error = None, None
        suspended = True
        try:
            if isinstance(instruction, Call):
                try:
                    send = await (deferral.call_whole(transport, instruction) if deferred else transport.call(instruction))
                except Exception as exc:
                    error = exc
            else:
                if isinstance(instruction, Parallel):
                    waiting: Any = asyncio.gather(*(transport.call(c) for c in instruction.calls), return_exceptions=True)
                elif isinstance(instruction, Sleep):
                    waiting = asyncio.sleep(instruction.seconds)
                elif isinstance(instruction, Await):
                    waiting = instruction.gate.wait_async(instruction.timeout)
                else:  # pragma: no cover - a flow bug
                    raise TypeError(f"unknown instruction {instruction!r}")
                done = await (deferral.outlast(waiting) if deferred else waiting)
                send = list(done) if isinstance(instruction, Parallel) else None
        except BaseException:  # CancelledError, KeyboardInterrupt: never into the flow as an answer
            _close(flow)
            raise


def _close(flow: Generator) -> None:
    """End a flow stopped while it waited (a cancelled task, Ctrl-C), so that its `finally` and
    `except BaseException` blocks run now: a queued acquire leaves its queue and its batch, a leader
    settles its batch (members see the outcome at once, not after RIDE_WAITS). Left suspended, a flow
    would keep all that until it is garbage collected, which a kept traceback or task can put off
    forever. The stop that caused it is what the caller sees: an error while closing is not."""
    try:
        flow.close()
    except Exception:
        pass
