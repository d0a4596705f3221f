"""Combined writes: acquires that queue on one bucket behind this client's idle-form write ride on the
next write of that bucket, instead of each waiting its turn to write (bucket_views.py keeps the queue).

Why it is exact: a token bucket that admits n takes at one instant, one after the other, ends where one
take of their sum leaves it (`max(tat, now) + sum of costs`), and admits all n exactly when it admits the
sum, since the admission test is monotone in the amount. So the first acquire to queue on a bucket leads
a batch, later compatible arrivals add their amounts to it, and when the leader's turn comes it writes
the sum in one conditional UpdateItem, charged as the sum of each member's own cost (so each lease's
refund gives back exactly what it was charged) and counted as that many acquires. All or nothing: when
the combined write is refused, every member writes again on its own, so a batch never refuses an
acquire that would have been admitted alone. A lost answer is lost for every member (each sees an
outage, as for its own write); no member's amounts are ever sent twice.

Only single-bucket acquires of one configuration with no soft limits and no reservoirs combine (a soft
limit's overdraw is reported per acquire, and a reserve is sized per write). No I/O; the lock is the
bucket views'.
"""

from __future__ import annotations

from typing import Mapping

from ..core.acquire import Part, costs_of
from ..core.answers import WriteOutcomeUnknown
from ..core.calls import Await, Flow
from ..core.errors import RateLimiterUnavailable, StorageError
from .gate import Gate

# How long a member waits for its batch's write, in steps of RIDE_WAIT_STEP seconds. The leader always
# settles its batch (both drivers close a flow stopped while it waits, so its `finally` runs at once when
# its task is cancelled or Ctrl-C stops it), so this only bounds a wait that a bug would make endless;
# past it the member's outcome is unknown.
RIDE_WAIT_STEP = 1.0
RIDE_WAITS = 120

ADMITTED = "admitted"
ALONE = "alone"  # refused as a whole, or never written: each member writes on its own


class Batch:
    """Acquires of one bucket that one write takes together. Changed only under the views' lock."""

    __slots__ = ("part", "amounts", "costs", "members", "closed", "gate", "outcome", "error", "refusal", "now")

    def __init__(self, leader: Part) -> None:
        self.part = leader  # the leader's part: its level and resource are every member's
        self.amounts: dict[str, int] = dict(leader.amounts)
        self.costs: dict[str, int] = costs_of(leader.level, leader.amounts)
        self.members = 1
        self.closed = False  # the leader's write is built: nobody joins or leaves any more
        self.gate = Gate()  # opened once the outcome is known
        self.outcome: str | None = None
        self.error: BaseException | None = None
        # A refused write's item (ALL_OLD) and the clock it was written at: each member decides from it,
        # as a refused write of its own would (a rejection needs no further request).
        self.refusal: dict | None = None
        self.now = 0

    def join(self, part: Part) -> bool:
        """Add a member, if the batch is open, of the same configuration, and can hold it: the summed
        cost of every limit within its capacity (a full bucket admits exactly that)."""
        level = self.part.level
        if self.closed or (part.level is not level and part.level != level):
            return False
        costs = costs_of(level, part.amounts)
        limits = level.by_name
        if any(self.costs.get(name, 0) + cost > limits[name].tau_ns for name, cost in costs.items()):
            return False
        _add(self.amounts, part.amounts, 1)
        _add(self.costs, costs, 1)
        self.members += 1
        return True

    def leave(self, part: Part) -> None:
        """A member stopped waiting before the write was built: its amounts are not written."""
        if not self.closed:
            _add(self.amounts, part.amounts, -1)
            _add(self.costs, costs_of(self.part.level, part.amounts), -1)
            self.members -= 1

    def combined(self) -> Part | None:
        """What the leader writes, once it is the leader's turn (None: nobody joined)."""
        self.closed = True
        if self.members == 1:
            return None
        return Part(self.part.level, self.part.resource, {name: milli for name, milli in self.amounts.items() if milli})

    def settle(self, landed: bool, refused: bool, error: BaseException | None, refusal: dict | None = None,
               now: int = 0) -> None:
        """The leader's write is over: admitted, refused as a whole (`refusal`: the item it returned),
        or ended by `error` (it may have been applied)."""
        self.closed = True
        self.refusal, self.now = refusal, now
        self.outcome = ADMITTED if landed else ALONE if refused or error is None else None
        self.error = None if landed or refused else error
        self.gate.open()

    def ride(self) -> Flow[bool]:
        """A member's wait for the outcome: True admitted, False to write on its own; raises when the
        write's outcome is not known (the member's amounts may have been charged)."""
        for _ in range(RIDE_WAITS):
            if self.gate.opened:
                break
            yield Await(self.gate, RIDE_WAIT_STEP)
        if self.outcome is not None:
            return self.outcome == ADMITTED
        entity_id, resource = self.part.key
        cause = self.error
        message = f"bucket {entity_id}/{resource}: the write this acquire was combined into ended with {cause!r}"
        if isinstance(cause, StorageError):
            raise StorageError(message, cause.code, cause)
        if isinstance(cause, RateLimiterUnavailable) and not isinstance(cause, WriteOutcomeUnknown):
            raise RateLimiterUnavailable(message, cause)  # nothing was applied
        raise WriteOutcomeUnknown(message, cause)


def _add(total: dict[str, int], amounts: Mapping[str, int], sign: int) -> None:
    for name, value in amounts.items():
        total[name] = total.get(name, 0) + sign * value
