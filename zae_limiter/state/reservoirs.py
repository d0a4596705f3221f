"""Token reservoirs (DESIGN section 14; opt-in: `reservoir_seconds`): a client that uses a bucket fast
takes, in the same conditional write that admits an acquire, extra tokens for about `reservoir_seconds`
of its own rate, and admits later acquires from them with no request.

Why it never over-admits: reserved tokens are charged to the shared bucket (its tat moves) before any of
them is handed out, so what all clients admit stays within capacity + refill, whatever each holds.
What it strands: while a client holds a reserve, other clients cannot take those tokens. Per client and
limit, a reserve is at most `reservoir_seconds` of that client's own rate (reservoir_rate.Rate: what it
took, averaged over the last RATE_HALF_LIFE or so and over at least `reservoir_seconds`, so a client
that has taken k tokens so far reserves at most about k) and at most MAX_SHARE of the capacity. It expires
`reservoir_seconds` after the last write that added to it, and the limiter's one background thread
gives it back (tat moves back, capped at capacity as any refund) within FLUSH_SECONDS more; until then
the client may still admit from it (those tokens are charged either way). Everything goes back on
`close()`.
What it costs: a refill rides on the write of an acquire the reserve could not serve (the first to miss
claims it). The acquires that miss while it is on its way queue for it, and it admits them in the order
they came when it lands, before any acquire that comes later can spend it (with many threads in one
process, the threads still running would otherwise spend each refill before the woken ones run, and
these would wait for refill after refill, then write); if it cannot admit them all, the first still
queued is woken to write the next, and the others stay queued for that one. A write sent again after a
refusal (other clients moved the bucket past this client's view) takes its amount alone, so a reserve
costs an acquire at most one refused write; except that a refill refused for its form alone (the item
it gets back shows that the bucket held the reserve too: the write guessed idle for a bucket another
client had just made busy, or the reverse, which under a few clients sharing a bucket is a refill in
three) is sent again with its reserve, once, and the acquires queued for it wait for that one.
Usage stays exact: the consumed counters move by what was admitted, never by what was reserved. What a
client admits locally is added to the counters with its next write of the bucket, or by the background
thread within `reservoir_seconds` + FLUSH_SECONDS; a process that dies loses at most that much usage
history, and admits nothing more for it (its reserve stays charged until the bucket refills).

All state is guarded by one lock, held for microseconds and never across a request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from ..core import bucket
from ..core.acquire import Part
from ..core.limits import Limit
from .gate import Gate
from .reservoir_rate import Rate

Key = tuple[str, str]
MAX_SHARE = 0.1  # of a limit's capacity, at most, in one client's reserve
FLUSH_SECONDS = 0.5  # how often the background thread looks for reserves to give back and usage to write
# A refill claimed by an acquire that then never wrote (it failed first) stops holding others up after this.
REFILL_CLAIM_SECONDS = 0.5


@dataclass
class Reserve:
    """One bucket's reserve in this client."""

    units: dict[str, int] = field(default_factory=dict)  # clock units charged to the bucket, not yet admitted
    usage: dict[str, int] = field(default_factory=dict)  # thousandths admitted locally, not yet counted
    acquires: int = 0  # acquires admitted locally, not yet counted
    expires: float = 0.0  # monotonic: the units go back then
    since: float | None = None  # monotonic: when the oldest uncounted usage was admitted
    in_flight: dict[str, int] = field(default_factory=dict)  # units writes in flight aim to add
    refilling: bool = False  # a refill is claimed (wait_for_refill) or in flight
    claimed: float = 0.0  # monotonic: when it was claimed
    waiters: dict["Waiter", None] = field(default_factory=dict)  # queued for it, in arrival order
    # Refills refused, to be sent again by the acquires that wrote them (Reservoirs.failed): the Part
    # (which identifies that acquire) and the units it aimed to add, still counted in `in_flight`.
    resends: list[tuple[Part, dict[str, int]]] = field(default_factory=list)
    limits: Mapping[str, Limit] = field(default_factory=dict)  # the bucket's limits, by name


@dataclass(eq=False)
class Waiter:
    """An acquire the reserves could not serve, queued for a refill on its way to one of them. It is
    queued on the reserve of each of its parts and admitted by the refill that leaves all of them
    holding its amounts (`admitted`, then its gate opens), or woken holding the claim of the next refill
    when the ones on their way have ended without admitting it (`claimant`)."""

    parts: Sequence[Part]
    gate: Gate = field(default_factory=Gate)
    admitted: bool = False
    claimant: bool = False  # woken to write the next refill


@dataclass
class Carry:
    """What one write of a bucket takes along: the reserve it aims at, and the usage it counts."""

    target: dict[str, int]  # units the reserve should hold once the write lands
    held: dict[str, int]  # units the reserve held when the write was planned
    usage: dict[str, int]
    acquires: int
    resent: bool = False  # the refill's second and last try (Reservoirs.failed)


class Reservoirs:
    def __init__(self, seconds: float, monotonic: Callable[[], float]) -> None:
        self.seconds = seconds
        self.monotonic = monotonic
        self._reserves: dict[Key, Reserve] = {}
        self._rates: dict[Key, Rate] = {}
        self._lock = threading.Lock()
        self.local_admissions = 0

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    # -- local admission --------------------------------------------------------------------------
    def take(self, parts: Sequence[Part], observe: bool = True) -> bool:
        """Admit the acquire from this client's reserves if every part's holds its amounts (all or
        nothing). `observe`: count its amounts in the client's rate (once per acquire: False when it
        tries again after waiting for a refill)."""
        now = self.monotonic()
        with self._lock:
            if observe:
                for part in parts:
                    self._observe(part, now)
            return self._admit(parts, now)

    def _admit(self, parts: Sequence[Part], now: float, sign: int = 1) -> bool:
        """Move the acquire's amounts from the reserves to the usage if every part's holds them (`sign`
        -1: move them back, for an admission undone)."""
        reserves = [self._reserves.get(part.key) for part in parts]
        for part, reserve in zip(parts, reserves):
            if reserve is None:
                return False
            for name, milli in part.amounts.items():
                limit = part.level.by_name.get(name)
                lacking = limit is not None and milli and reserve.units.get(name, 0) < bucket.cost_ns(limit, milli)
                if sign > 0 and lacking:
                    return False
        for part, reserve in zip(parts, reserves):
            assert reserve is not None
            for name, value in part.amounts.items():
                limit = part.level.by_name.get(name)
                if limit is None or not value:
                    continue
                reserve.units[name] = reserve.units.get(name, 0) - sign * bucket.cost_ns(limit, value)
                reserve.usage[name] = reserve.usage.get(name, 0) + sign * value
            reserve.acquires += sign
            if reserve.since is None:
                reserve.since = now
        self.local_admissions += sign
        return True

    def adjust(self, parts: Sequence[Part], milli: Sequence[Mapping[str, int]], costs: Sequence[Mapping[str, int]]) -> bool:
        """Apply a lease's change to the reserves of its parts, if each is live and holds what a charge
        takes (a give-back always fits). `costs`: the clock units each part's tat would move by."""
        now = self.monotonic()
        with self._lock:
            reserves = [self._reserves.get(part.key) for part in parts]
            for reserve, part_costs in zip(reserves, costs):
                if reserve is None:
                    return False
                if any(cost > 0 and reserve.units.get(name, 0) < cost for name, cost in part_costs.items()):
                    return False
            for reserve, part_milli, part_costs in zip(reserves, milli, costs):
                assert reserve is not None
                for name, cost in part_costs.items():
                    reserve.units[name] = reserve.units.get(name, 0) - cost
                for name, value in part_milli.items():
                    reserve.usage[name] = reserve.usage.get(name, 0) + value
                if reserve.since is None:
                    reserve.since = now
            return True

    # -- what writes carry -------------------------------------------------------------------------
    def _observe(self, part: Part, now: float) -> None:
        rate = self._rates.get(part.key)
        if rate is None:
            rate = self._rates[part.key] = Rate()
        rate.add(part.amounts, now)

    def carry(self, part: Part, view: Mapping[str, int], now_ns: int, alone: bool = False) -> Carry:
        """What the next write of `part`'s bucket takes along: for each limit it takes from, more
        reserve (sized from this client's rate; with what the reserve holds and what writes in flight
        add, at most MAX_SHARE of capacity; and no more than the bucket holds beyond the amount, as far
        as `view` tells), and the usage admitted locally since the last write. `alone`: a write sent
        again after a refusal (other clients moved the bucket past this client's view) takes its
        amount alone, so that a reserve never costs an acquire more than one refused write, unless it
        sends again this acquire's refill that was refused for its form alone: `view` (the refused
        item) shows room for the reserve that write aimed at. What the reserve holds stays usable
        meanwhile: it was charged already, whatever this write does. The usage is claimed: `landed` or
        `failed` must follow."""
        with self._lock:
            reserve = self._reserves.get(part.key)
            if reserve is None:
                reserve = self._reserves[part.key] = Reserve()
            reserve.limits = part.level.by_name
            resend = self._pop_resend(reserve, part) if alone else None
            if resend is not None:  # once: a refusal of the write sent again ends the refill
                self._drop_in_flight(reserve, resend)
            target = self._refill(part, reserve, view, now_ns, resend, alone)
            for name, units in target.items():
                reserve.in_flight[name] = reserve.in_flight.get(name, 0) + units
            if target:
                reserve.refilling = True
            elif resend is not None:
                self._settle(reserve, Carry({}, {}, {}, 0))  # nothing to send again: the refill ends
            carry = Carry(target, {}, dict(reserve.usage), reserve.acquires, resent=resend is not None)
            reserve.usage, reserve.acquires, reserve.since = {}, 0, None
            return carry

    def _refill(self, part: Part, reserve: Reserve, view: Mapping[str, int], now_ns: int,
                refused: Mapping[str, int] | None, alone: bool) -> dict[str, int]:
        """The units a write of `part` adds to its reserve, per limit (`carry`). `refused`: what the
        refused refill this write sends again aimed at; nothing unless `view` had room for all of it
        (then the refusal was for the write's form, which the reserve played no part in)."""
        if alone and refused is None:
            return {}
        rate = self._rates.get(part.key)
        target: dict[str, int] = {}
        for limit in part.level.limits:
            taken = part.amounts.get(limit.name, 0)
            expected = (rate.of(limit.name, self.seconds) if rate else 0.0) * self.seconds
            if not taken or limit.soft or expected < 2 * taken:
                continue  # not taken, or not used fast enough by this client for a reserve to pay
            cap = bucket.cost_ns(limit, int(min(expected, MAX_SHARE * limit.capacity_milli)))
            clock = bucket.clock(limit, now_ns)
            tat = view.get(limit.name)
            room = clock + limit.tau_ns - max(tat if tat is not None else clock, clock) - bucket.cost_ns(limit, taken)
            if refused is not None and room < refused.get(limit.name, 0):
                return {}  # the bucket may not have held the reserve: this write takes its amount alone
            units = min(cap - max(0, reserve.units.get(limit.name, 0)) - reserve.in_flight.get(limit.name, 0), room)
            if units > 0:
                target[limit.name] = units
        return target

    @staticmethod
    def _pop_resend(reserve: Reserve, part: Part) -> dict[str, int] | None:
        for index, (owner, target) in enumerate(reserve.resends):
            if owner is part:
                del reserve.resends[index]
                return target
        return None

    def _drop_in_flight(self, reserve: Reserve, target: Mapping[str, int]) -> None:
        for name, units in target.items():
            reserve.in_flight[name] = reserve.in_flight.get(name, 0) - units

    def _settle(self, reserve: Reserve, carry: Carry) -> None:
        self._drop_in_flight(reserve, carry.target)
        if reserve.refilling and not any(units > 0 for units in reserve.in_flight.values()):
            self._end_refill(reserve)

    def _end_refill(self, reserve: Reserve) -> None:
        """No refill is on its way to this reserve any more: the first acquire still waiting for one
        whose reserves all have none writes the next (it is woken holding the claim); the others go on
        waiting, and none of them is woken for nothing."""
        reserve.refilling = False
        for waiter in reserve.waiters:
            reserves = [self._reserves[part.key] for part in waiter.parts]
            if not any(r.refilling for r in reserves):  # a cascade's lands on the child's, then the parent's
                for r in reserves:
                    r.refilling, r.claimed = True, self.monotonic()
                waiter.claimant = True
                waiter.gate.open()
                return

    def _serve_waiters(self, reserve: Reserve) -> None:
        """Admit the acquires waiting on this reserve that the reserves now hold, in arrival order."""
        if not reserve.waiters:
            return
        now = self.monotonic()
        for waiter in list(reserve.waiters):
            if self._admit(waiter.parts, now):
                waiter.admitted = True
                self._dequeue(waiter)
                waiter.gate.open()

    def _dequeue(self, waiter: Waiter) -> None:
        for part in waiter.parts:
            reserve = self._reserves.get(part.key)
            if reserve is not None:
                reserve.waiters.pop(waiter, None)

    def wait_for_refill(self, parts: Sequence[Part]) -> Waiter | None:
        """If a write in flight (or about to be) adds to one of these reserves, queue the acquire for
        it: an acquire the reserves cannot serve now waits for it (one round trip at most) rather than
        writing too, which under concurrency would be one write per acquire again; the refill admits it
        when it lands (`served`). None: there is none, and this caller's write is the one (claimed here,
        in the same step as the check, so that the acquires that miss meanwhile wait for it instead of
        each writing; the refill ends when that write does, whether it added units or not). A claim
        whose write never came is dropped after REFILL_CLAIM_SECONDS."""
        now = self.monotonic()
        with self._lock:
            reserves = [r for r in (self._reserves.get(part.key) for part in parts) if r is not None]
            for reserve in reserves:
                claimed_only = not any(units > 0 for units in reserve.in_flight.values())
                if reserve.refilling and claimed_only and now - reserve.claimed > REFILL_CLAIM_SECONDS:
                    self._end_refill(reserve)  # which may hand it to the first acquire queued
            if any(reserve.refilling for reserve in reserves):
                waiter = Waiter(parts)
                for part in parts:
                    self._reserves.setdefault(part.key, Reserve()).waiters[waiter] = None
                return waiter
            for reserve in reserves:
                reserve.refilling, reserve.claimed = True, now
        return None

    def written(self, parts: Sequence[Part]) -> None:
        """The acquire's writes are over (admitted, refused or failed): a refill of it that waited to be
        sent again (failed) and was not ends, and the acquires waiting for it try again."""
        with self._lock:
            for part in parts:
                reserve = self._reserves.get(part.key)
                target = self._pop_resend(reserve, part) if reserve is not None else None
                if target is not None:
                    self._settle(reserve, Carry(target, {}, {}, 0))

    def served(self, waiter: Waiter) -> bool | None:
        """After the wait: True, the refill `waiter` waited for admitted it; None, it holds the claim of
        the next refill (it writes); False, neither (it timed out): it leaves the queues."""
        with self._lock:
            if not waiter.admitted:
                self._dequeue(waiter)
            return True if waiter.admitted else None if waiter.claimant else False

    def abandon(self, waiter: Waiter) -> None:
        """The acquire stopped waiting (cancelled): out of the queues, and an admission it can no
        longer return is undone, so that the usage counts only what callers were given."""
        with self._lock:
            if waiter.admitted:
                self._admit(waiter.parts, self.monotonic(), sign=-1)
                waiter.admitted = False
            self._dequeue(waiter)
            if waiter.claimant:  # the claim it was handed goes to the next in line
                for part in waiter.parts:
                    reserve = self._reserves[part.key]
                    if reserve.refilling and not any(units > 0 for units in reserve.in_flight.values()):
                        self._end_refill(reserve)

    def landed(self, part: Part, carry: Carry) -> None:
        with self._lock:
            reserve = self._reserves.setdefault(part.key, Reserve())
            for name, units in carry.target.items():
                reserve.units[name] = reserve.units.get(name, 0) + units
            if carry.target:
                reserve.expires = self.monotonic() + self.seconds
            self._serve_waiters(reserve)  # before anyone else can spend it (a cascade's other part, too)
            self._settle(reserve, carry)

    def failed(self, part: Part, carry: Carry, applied_maybe: bool) -> None:
        """The write did not land (`applied_maybe`: or its answer was lost). A refused write gives back
        its claim; an unknown one drops it: counting usage twice, or admitting from units the write may
        have given back, are worse than losing that much history or stranding those tokens."""
        with self._lock:
            reserve = self._reserves.setdefault(part.key, Reserve())
            if carry.target and not carry.resent and not applied_maybe:
                # Refused: still on its way, with this acquire's next write, which sends it again if the
                # refusal was for the write's form (carry); the acquires waiting for it go on waiting.
                reserve.resends.append((part, dict(carry.target)))
            else:
                self._settle(reserve, carry)
            if applied_maybe:
                return
            for name, units in carry.held.items():
                reserve.units[name] = reserve.units.get(name, 0) + units
            for name, value in carry.usage.items():
                reserve.usage[name] = reserve.usage.get(name, 0) + value
            reserve.acquires += carry.acquires
            if carry.usage and reserve.since is None:
                reserve.since = self.monotonic()

    # -- the background thread's work --------------------------------------------------------------
    def due(self, everything: bool = False) -> list[tuple[Key, Carry, Mapping[str, Limit]]]:
        """Reserves to give back (expired) and usage to count (older than `reservoir_seconds`): each
        claimed as one Carry with no target; `everything` (close): all of them."""
        now = self.monotonic()
        out = []
        with self._lock:
            for key, reserve in list(self._reserves.items()):
                expired = reserve.expires <= now and any(units > 0 for units in reserve.units.values())
                stale = reserve.since is not None and now - reserve.since >= self.seconds
                if everything or expired or stale:
                    give_back = reserve.units if (everything or expired) else {}
                    carry = Carry({}, {n: u for n, u in give_back.items() if u > 0}, dict(reserve.usage), reserve.acquires)
                    if give_back:
                        reserve.units = {}
                    reserve.usage, reserve.acquires, reserve.since = {}, 0, None
                    if carry.held or carry.usage or carry.acquires:
                        out.append((key, carry, reserve.limits))
                # Kept while a refill is claimed or in flight: the acquires waiting for it are queued here.
                idle = (not reserve.refilling and not reserve.waiters and not any(reserve.in_flight.values())
                        and not any(u > 0 for u in reserve.units.values()))
                if idle and not reserve.usage and not reserve.acquires:
                    del self._reserves[key]
        return out

    def held_tokens(self) -> dict[str, float]:
        """Tokens held in reserve now, summed per limit name."""
        totals: dict[str, float] = {}
        with self._lock:
            for reserve in self._reserves.values():
                for name, units in reserve.units.items():
                    limit = reserve.limits.get(name)
                    if limit is not None and units > 0:
                        totals[name] = totals.get(name, 0.0) + units * limit.refill_milli / limit.period_ns / 1000
        return totals
