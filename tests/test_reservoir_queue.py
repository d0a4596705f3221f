"""The acquires a reserve cannot serve, and the writes that refill it (state/reservoirs.py), without I/O on
a clock the test moves: the first to miss claims the refill and the others queue for it; the refill
admits the queue in arrival order when it lands, before any acquire that comes later can spend it (with
many threads in one process, running threads would otherwise spend each refill before the woken ones
run); if it cannot admit them all, only the first still queued is woken, holding the claim of the next.
A refill refused for its form alone is sent again once with its reserve and the queue waits for that
one; refused where the bucket may not have held the reserve, the write takes its amount alone.

The refills here are sized by the room the view leaves (a bucket with k tokens left beyond the amount
reserves k), so that what each admits is known from the definition of a token bucket."""

from __future__ import annotations

import pytest

from zae_limiter import Limit
from zae_limiter.core import bucket
from zae_limiter.core.acquire import Level, Part
from zae_limiter.state.reservoirs import REFILL_CLAIM_SECONDS, Reservoirs

SECONDS = 0.2
RPS = Limit.per_second("rps", 2000)
NOW_NS = 10**18
LEVEL = Level("k", (RPS,))
PARENT = Level("project", (RPS,))
TOKEN = bucket.cost_ns(RPS, 1000)


# The sizing tests' clock (moved by the test) and reservoirs on it, reservoir_seconds SECONDS as here.
from test_reservoir_sizing import Clock, clock, reservoirs  # noqa: E402,F401


def acquire(*levels: Level) -> list[Part]:
    """One acquire's parts (new objects each time, as every acquire's are): one token on each level."""
    return [Part(level, "gpt", {"rps": 1000}) for level in levels]


def room(tokens: int) -> dict[str, int]:
    """A view of a bucket that holds the amount plus `tokens` more: a refill reserves `tokens` at most."""
    full = bucket.clock(RPS, NOW_NS) + RPS.tau_ns
    return {"rps": full - TOKEN - tokens * TOKEN}


def hot(reservoirs: Reservoirs, clock: Clock, *levels: Level) -> float:
    """A client that took 50 tokens in 50 ms (a reserve worth tens of tokens) and has spent its reserve;
    returns what is left of it, less than a token."""
    for _ in range(50):
        parts = acquire(*levels)
        if not reservoirs.take(parts):
            for part in parts:
                reservoirs.landed(part, reservoirs.carry(part, {}, NOW_NS))
        clock.now += 0.001
    while reservoirs.take(acquire(*levels)):
        pass
    return held(reservoirs, levels[0])


def held(reservoirs: Reservoirs, level: Level = LEVEL) -> float:
    return reservoirs._reserves[(level.entity_id, "gpt")].units.get("rps", 0) / TOKEN


def test_the_first_to_miss_writes_and_the_others_are_admitted_by_its_refill_before_later_acquires(reservoirs, clock):
    left = hot(reservoirs, clock, LEVEL)
    writer = acquire(LEVEL)
    assert reservoirs.wait_for_refill(writer) is None  # the first to miss claims the refill
    queued = [reservoirs.wait_for_refill(acquire(LEVEL)) for _ in range(2)]
    assert all(waiter is not None and not waiter.gate.opened for waiter in queued)
    carry = reservoirs.carry(writer[0], room(2), NOW_NS)
    assert carry.target == {"rps": 2 * TOKEN}  # two tokens beyond its own: all the bucket holds
    reservoirs.landed(writer[0], carry)
    assert all(waiter.gate.opened and reservoirs.served(waiter) is True for waiter in queued)
    assert held(reservoirs) == pytest.approx(left)
    assert not reservoirs.take(acquire(LEVEL))  # a later acquire finds it spent by the queue, not the reverse


def test_a_refill_too_small_for_the_queue_wakes_only_the_first_left_to_write_the_next(reservoirs, clock):
    hot(reservoirs, clock, LEVEL)
    writer = acquire(LEVEL)
    assert reservoirs.wait_for_refill(writer) is None
    first, second, third = (reservoirs.wait_for_refill(acquire(LEVEL)) for _ in range(3))
    reservoirs.landed(writer[0], reservoirs.carry(writer[0], room(1), NOW_NS))
    assert reservoirs.served(first) is True
    assert second.gate.opened and reservoirs.served(second) is None  # woken holding the next claim
    assert not third.gate.opened  # still queued, for that one
    assert reservoirs.wait_for_refill(acquire(LEVEL)) is not None  # and a newcomer queues behind it
    reservoirs.landed(second.parts[0], reservoirs.carry(second.parts[0], room(5), NOW_NS))
    assert reservoirs.served(third) is True


def test_a_cascade_acquire_is_woken_once_both_of_its_refills_have_landed(reservoirs, clock):
    left = hot(reservoirs, clock, LEVEL, PARENT), held(reservoirs, PARENT)
    writer = acquire(LEVEL, PARENT)
    assert reservoirs.wait_for_refill(writer) is None
    waiter = reservoirs.wait_for_refill(acquire(LEVEL, PARENT))
    carries = [reservoirs.carry(part, room(3), NOW_NS) for part in writer]
    reservoirs.landed(writer[0], carries[0])  # the child's reserve first, as a transaction's answer is read
    assert not waiter.gate.opened  # the parent's is still on its way: nothing to try yet
    reservoirs.landed(writer[1], carries[1])
    assert reservoirs.served(waiter) is True
    assert (held(reservoirs, LEVEL), held(reservoirs, PARENT)) == pytest.approx((left[0] + 2, left[1] + 2))


def test_an_acquire_cancelled_after_its_refill_admitted_it_gives_its_amounts_back(reservoirs, clock):
    left = hot(reservoirs, clock, LEVEL)
    writer = acquire(LEVEL)
    assert reservoirs.wait_for_refill(writer) is None
    waiter = reservoirs.wait_for_refill(acquire(LEVEL))
    admissions = reservoirs.local_admissions
    reservoirs.landed(writer[0], reservoirs.carry(writer[0], room(3), NOW_NS))
    assert waiter.admitted and held(reservoirs) == pytest.approx(left + 2)
    reservoirs.abandon(waiter)  # its caller is gone: nobody was given that token
    assert held(reservoirs) == pytest.approx(left + 3) and reservoirs.local_admissions == admissions
    usage = reservoirs.carry(writer[0], room(0), NOW_NS).usage
    assert usage.get("rps", 0) == 0  # the usage counts only what callers were given


def test_a_claimant_that_is_cancelled_hands_its_claim_to_the_next_in_line(reservoirs, clock):
    hot(reservoirs, clock, LEVEL)
    writer = acquire(LEVEL)
    assert reservoirs.wait_for_refill(writer) is None
    first, second = (reservoirs.wait_for_refill(acquire(LEVEL)) for _ in range(2))
    reservoirs.landed(writer[0], reservoirs.carry(writer[0], room(0), NOW_NS))  # a full bucket: nothing added
    assert first.claimant and not second.gate.opened
    reservoirs.abandon(first)
    assert second.gate.opened and reservoirs.served(second) is None


def test_a_claim_whose_write_never_came_stops_holding_the_queue_up(reservoirs, clock):
    hot(reservoirs, clock, LEVEL)
    assert reservoirs.wait_for_refill(acquire(LEVEL)) is None  # claimed, and never written
    waiter = reservoirs.wait_for_refill(acquire(LEVEL))
    clock.now += REFILL_CLAIM_SECONDS + 0.01
    assert reservoirs.wait_for_refill(acquire(LEVEL)) is not None  # the newcomer queues behind...
    assert waiter.gate.opened and reservoirs.served(waiter) is None  # ...the first queued, now the writer


def refill_with_one_waiter(reservoirs, clock):
    """A hot client's refill claimed and written (room for 4 tokens in the view), one acquire queued for
    it: (the writer's parts, the waiter, the refill's carry)."""
    hot(reservoirs, clock, LEVEL)
    writer = acquire(LEVEL)
    assert reservoirs.wait_for_refill(writer) is None
    waiter = reservoirs.wait_for_refill(acquire(LEVEL))
    return writer, waiter, reservoirs.carry(writer[0], room(4), NOW_NS)


def test_a_refill_refused_for_its_form_is_sent_again_once_and_the_queue_waits_for_it(reservoirs, clock):
    writer, waiter, first = refill_with_one_waiter(reservoirs, clock)
    reservoirs.failed(writer[0], first, applied_maybe=False)  # refused: the bucket had moved past the view
    assert not waiter.gate.opened  # waiting for the write sent again
    other = acquire(LEVEL)[0]  # another acquire's write sent again after a refusal of its own
    assert reservoirs.carry(other, room(4), NOW_NS, alone=True).target == {}
    again = reservoirs.carry(writer[0], room(4), NOW_NS, alone=True)  # the refused item: room for it all
    assert again.target == first.target and again.resent
    reservoirs.failed(writer[0], again, applied_maybe=False)  # refused again: the refill ends
    assert waiter.gate.opened and reservoirs.served(waiter) is None  # the first queued writes the next
    assert reservoirs.carry(writer[0], room(4), NOW_NS, alone=True).target == {}  # and this one, its amount alone


def test_a_refill_refused_where_the_bucket_may_not_have_held_it_is_not_sent_again(reservoirs, clock):
    writer, waiter, first = refill_with_one_waiter(reservoirs, clock)
    reservoirs.failed(writer[0], first, applied_maybe=False)
    again = reservoirs.carry(writer[0], room(3), NOW_NS, alone=True)  # other clients took some meanwhile
    assert again.target == {}  # the reserve may have been why: its amount alone
    assert waiter.gate.opened and reservoirs.served(waiter) is None


def test_an_acquire_refused_for_good_ends_the_refill_it_would_have_sent_again(reservoirs, clock):
    hot(reservoirs, clock, LEVEL)
    writer = acquire(LEVEL)
    assert reservoirs.wait_for_refill(writer) is None
    waiter = reservoirs.wait_for_refill(acquire(LEVEL))
    reservoirs.failed(writer[0], reservoirs.carry(writer[0], room(4), NOW_NS), applied_maybe=False)
    assert not waiter.gate.opened
    reservoirs.written(writer)  # a rejection (or it gave up): no write follows
    assert waiter.gate.opened and reservoirs.served(waiter) is None
    assert reservoirs._reserves[LEVEL.entity_id, "gpt"].in_flight == {"rps": 0}
