"""state.gate.Gate: one flow waits for another's request. Every waiter wakes when the gate opens, in
either driver and from any thread, and a wait ends by its timeout otherwise, without raising."""

from __future__ import annotations

import asyncio
import threading
import time

from zae_limiter.state.gate import Gate


def test_opening_wakes_every_sync_waiter_and_later_waits_pass_at_once() -> None:
    gate, woken = Gate(), []
    threads = [threading.Thread(target=lambda: (gate.wait(10), woken.append(time.monotonic()))) for _ in range(16)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    assert woken == []  # shut: nobody passes
    opened = time.monotonic()
    gate.open()
    gate.open()  # a second open changes nothing
    for thread in threads:
        thread.join(5)
    assert len(woken) == 16 and all(t >= opened for t in woken)
    started = time.monotonic()
    gate.wait(10)
    assert time.monotonic() - started < 1  # open: no wait


def test_a_sync_wait_ends_by_its_timeout() -> None:
    started = time.monotonic()
    Gate().wait(0.2)
    assert time.monotonic() - started >= 0.19


def test_an_async_waiter_is_woken_from_its_own_loop_and_from_another_thread() -> None:
    async def main() -> None:
        same = Gate()
        waiting = asyncio.ensure_future(same.wait_async(10))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        same.open()  # on the waiter's own loop
        await asyncio.wait_for(waiting, 5)
        other = Gate()
        waiting = asyncio.ensure_future(other.wait_async(10))
        await asyncio.sleep(0.05)
        opener = threading.Thread(target=other.open)  # another thread, no loop of its own
        opener.start()
        await asyncio.wait_for(waiting, 5)
        opener.join()

    asyncio.run(main())


def test_an_async_wait_ends_by_its_timeout_and_an_opened_wait_leaves_no_deadline() -> None:
    from zae_limiter.state import deadlines

    async def main() -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await Gate().wait_async(0.1)
        assert loop.time() - started >= 0.09
        gate = Gate()
        waiting = asyncio.ensure_future(gate.wait_async(30))
        await asyncio.sleep(0.01)
        gate.open()
        await waiting
        # The 30 s expiry went with the wait; its timer (never cancelled) is the only one left, and
        # when it fires it finds nothing to expire and arms no other.
        assert len(deadlines.of(loop)) == 0
        assert len([handle for handle in loop._scheduled if not handle.cancelled()]) <= 1  # type: ignore[attr-defined]

    asyncio.run(main())


def test_coalesced_deadlines_never_fire_early_share_one_timer_and_go_when_removed() -> None:
    from zae_limiter.state import deadlines

    async def main() -> None:
        loop = asyncio.get_running_loop()
        shared = deadlines.of(loop)
        assert deadlines.of(loop) is shared
        fired: list[tuple[str, float]] = []
        futures = {name: loop.create_future() for name in ("a", "b", "c")}
        started = loop.time()
        keys = {name: shared.add(0.2, future, lambda f, n=name: fired.append((n, loop.time())))
                for name, future in futures.items()}
        live = [handle for handle in loop._scheduled if not handle.cancelled()]  # type: ignore[attr-defined]
        assert len(set(keys.values())) <= 2 and len(live) == shared.armed() == 1  # three waits, one timer
        shared.remove(keys["b"], futures["b"])
        await asyncio.sleep(0.2 + 2 * deadlines.GRAIN + 0.1)
        assert sorted(name for name, _ in fired) == ["a", "c"]  # the removed one never fires
        # Never early; late by at most GRAIN, plus whatever a loaded machine adds (bounded loosely here).
        assert all(0.2 <= at - started <= 0.2 + deadlines.GRAIN + 1.0 for _, at in fired)
        shared.remove(keys["a"], futures["a"])  # after it fired: nothing to do
        assert len(shared) == 0 and shared.armed() == 0
        assert not [handle for handle in loop._scheduled if not handle.cancelled()]  # type: ignore[attr-defined]

    asyncio.run(main())


def test_waits_one_after_another_arm_one_timer_per_timeout_not_one_per_wait() -> None:
    """What one acquire after another does with its read timeouts: each wait ends long before its
    timeout. A timer per wait (armed, then cancelled) was a heap push and a cancelled entry each time."""
    from zae_limiter.state import deadlines

    async def main() -> None:
        loop = asyncio.get_running_loop()
        shared = deadlines.of(loop)
        arms = []
        real_call_at = loop.call_at

        def call_at(when: float, callback, *args, **kwargs):  # type: ignore[no-untyped-def]
            if getattr(callback, "__self__", None) is shared:
                arms.append(when)
            return real_call_at(when, callback, *args, **kwargs)

        loop.call_at = call_at  # type: ignore[method-assign]
        expired: list[asyncio.Future] = []
        started = loop.time()
        waits = 0
        while loop.time() - started < 0.6:
            future = loop.create_future()
            shared.remove(shared.add(0.2, future, expired.append), future)
            waits += 1
            await asyncio.sleep(0.005)
        loop.call_at = real_call_at  # type: ignore[method-assign]
        assert expired == []  # every wait ended in time: nothing expires
        elapsed = loop.time() - started
        # One timer per timeout's span, not one per wait (waits is ~100 on any machine that runs this).
        assert waits > 20 and len(arms) <= elapsed / 0.2 + 2, (waits, len(arms))
        await asyncio.sleep(0.2 + 2 * deadlines.GRAIN)
        assert shared.armed() == 0 and len(shared) == 0  # the last timer fired and armed no other

    asyncio.run(main())


def test_the_deadlines_of_a_closed_loop_go_with_it() -> None:
    """Each asyncio.run makes a loop; the deadlines of the ones that have closed must not keep them alive
    (their timers sit in the loop's heap, so a strong reference back would make a cycle the weak map
    could never clear)."""
    import gc

    from zae_limiter.state import deadlines

    async def wait_once() -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        shared = deadlines.of(loop)
        shared.remove(shared.add(30, future, lambda _: None), future)  # its timer stays armed
        await Gate().wait_async(0.01)

    gc.collect()
    before = len(deadlines._BY_LOOP)
    for _ in range(20):
        asyncio.run(wait_once())
    gc.collect()
    assert len(deadlines._BY_LOOP) <= before + 1, len(deadlines._BY_LOOP) - before
