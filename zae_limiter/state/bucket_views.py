"""What one client knows of the buckets it writes, and of its own writes in flight: the small stateful
layer between the pure decisions (acquire.py) and the flows. No I/O; the clocks are given.

- A view per bucket: the tats this client last saw, and when (monotonic seconds). It picks each write's
  form and, with the opt-in `reject_cache_seconds`, refuses locally while fresh. It never admits.
- Predictions: what this client's writes in flight will leave, so a concurrent acquire of this process
  picks the busy form (whose writes commute). Only ever used to choose a form, never to decide.
- The idle-form queue: idle-form writes do not commute (each sets tat from its own clock) and busy-form
  writes built on a prediction fail if they land before the write it predicts. So while this client has
  an idle-form write in flight on a bucket, later acquires on it queue and are let go one at a time, in
  arrival order, as each write lands (a hand-off, not a herd woken at once). The first acquire that
  queues on a bucket leads a batch that later ones join instead of queueing (combined_writes.py): one
  write then takes them all.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from ..core.acquire import Part, predicted_tats, rejection, uses_idle_form
from ..core.calls import Await, Flow
from .combined_writes import Batch
from .gate import Gate
from ..core.errors import RateLimitExceeded
from .lru import LRU

Key = tuple[str, str]  # (entity id, resource)
# A write in flight longer than this no longer holds its bucket's queue: a lost response never blocks it.
IDLE_WAIT_LIMIT = 1.0


class BucketView:
    __slots__ = ("tats", "seen", "moving")

    def __init__(self, tats: dict[str, int], seen: float, moving: dict[str, int] | None = None) -> None:
        self.tats = tats
        self.seen = seen
        # Set by a refusal whose item shows other clients' takes since this client's view: how far each
        # limit's tat moved meanwhile. The next write expects it to move as far again (see `_forms`).
        self.moving = moving


@dataclass(slots=True)
class Plan:
    """When an acquire's write is sent and from which views."""

    now: int
    known: list[dict[str, int]]  # per part: the view, raised by predictions of writes in flight
    forms: list[dict[str, int]]  # per part: the tats that pick its write's forms (`BucketViews._forms`)
    idle: list[Key]  # the buckets it writes in the idle form
    predictions: list[dict[str, int]]  # per part: what it will leave
    token: object  # identifies this write in the queue and the predictions
    # The acquires this write takes with its own (combined_writes.py), or None: `combined` is what it
    # writes, the batch's summed amounts and costs.
    batch: Batch | None = None
    combined: Part | None = None
    # Set instead of all the above when this acquire joined another's batch and writes nothing.
    riding: Batch | None = None


class BucketViews:
    def __init__(self, size: int, monotonic: Callable[[], float], reject_cache_seconds: float) -> None:
        self.monotonic = monotonic
        self.reject_cache_seconds = reject_cache_seconds
        self._views: LRU[Key, BucketView] = LRU(size)
        self._pending: dict[Key, dict[str, int]] = {}
        self._in_flight: dict[Key, tuple[float, object]] = {}  # (monotonic start, token)
        self._queues: dict[Key, deque[Gate]] = {}
        self._batches: dict[Key, Batch] = {}  # the open batch of each bucket, led by a queued acquire
        # Buckets whose turn has been handed to a woken acquire (monotonic time, its ticket): nobody else
        # plans there until it has. Without this the acquire that just finished plans again before the
        # woken one is scheduled, every time (measured: one thread wrote for 170 ms while 31 waited).
        self._handed: dict[Key, tuple[float, Gate]] = {}
        self.combined = 0  # acquires admitted by another acquire's write (limiter.stats)
        # Buckets whose stale view one caller is refreshing now: the others keep refusing from it for
        # one more window instead of all asking DynamoDB at once.
        self.refreshing: set[Key] = set()
        self._lock = threading.Lock()  # held for microseconds, never across a request

    @property
    def size(self) -> int:
        return self._views.size

    @size.setter
    def size(self, value: int) -> None:
        self._views.size = value

    def __len__(self) -> int:
        return len(self._views)

    def __contains__(self, key: object) -> bool:
        return key in self._views

    # -- views ----------------------------------------------------------------------------------
    def known(self, key: Key) -> dict[str, int]:
        view = self._views.get(key)
        return view.tats if view is not None else {}

    def expected(self, key: Key) -> dict[str, int]:
        """The view, raised by what this client's writes in flight will leave: for choosing a form."""
        return self._expected(key, self._views.get(key))

    def _expected(self, key: Key, view: BucketView | None) -> dict[str, int]:
        tats = view.tats if view is not None else {}
        pending = self._pending.get(key)
        if not pending:
            return tats
        return {**tats, **{name: max(tat, tats.get(name, tat)) for name, tat in pending.items()}}

    def remember(self, key: Key, tats: Mapping[str, int], complete: bool = False) -> None:
        """Record what this client saw of a bucket. `complete`: `tats` is a whole item (a read, or a failed
        write's ALL_OLD), which replaces the view: a limit missing from it is missing from the bucket (a
        deleted bucket must not keep its old state here). Otherwise (the attributes an update returned,
        or a prediction) it is merged."""
        if complete:
            merged = dict(tats)
        else:
            view = self._views.peek(key)  # `put` below counts the use
            merged = dict(view.tats) if view is not None else {}
            merged.update(tats)
        self._views.put(key, BucketView(merged, self.monotonic()))

    def refused(self, key: Key, tats: Mapping[str, int], built_from: Mapping[str, int] | None = None) -> None:
        """A write of this bucket was refused and its answer carried the whole item: the view becomes
        the item, and the predictions of this client's writes in flight are dropped. They were built on
        a view the item has just shown wrong, and each new one builds on the last: kept, they run away
        from the bucket (measured: seconds ahead of an idle bucket), every write picks the busy form,
        fails, and the acquire ends in BucketContention. A write in flight that does land remembers
        what it left; at worst one later guess of a form is wrong once.

        `built_from`: the tats the refused write was built from. How far the item's tats moved past them
        (other clients' takes meanwhile) is kept for the next guess of a form (`_forms`); a refusal that
        shows no move clears it. Without it (a combined write's members, told of their leader's
        refusal), what the same item taught is kept."""
        with self._lock:
            self._pending.pop(key, None)
        before = self._views.peek(key)
        self.remember(key, tats, complete=True)
        view = self._views.peek(key)
        if view is None:
            return
        if built_from:
            view.moving = {name: tat - built_from[name] for name, tat in tats.items()
                           if name in built_from and tat > built_from[name]} or None
        elif before is not None and before.tats == view.tats:
            view.moving = before.moving

    @staticmethod
    def _forms(view: BucketView | None, expected: dict[str, int]) -> dict[str, int]:
        """The tats that pick the forms of a write (`expected`, from `view`). Where a refusal showed other
        clients' takes moving a tat, it is expected to move as far again before this write lands: on a
        bucket near full that several clients write, the item's tat is then below the clock when the
        next write is built, and above it when that write lands; an idle-form guess fails each time (it
        needs tat < now), and the acquire ends in BucketContention. Either form is exact or refused
        (acquire.py), so a guess changes how many writes an acquire may take, never what it admits."""
        if view is None or not view.moving:
            return expected
        return {**expected, **{name: expected[name] + moved for name, moved in view.moving.items() if name in expected}}

    def forget(self, key: Key) -> None:
        self._views.pop(key)

    def forget_entity(self, entity_id: str) -> None:
        """Drop what this client knows of an entity's buckets (it was deleted)."""
        for key in self._views.keys():
            if key[0] == entity_id:
                self._views.pop(key)

    def local_rejection(self, parts: Sequence[Part], now: int) -> tuple[RateLimitExceeded | None, Key | None]:
        """A refusal decided without a request, from views of every part fresher than the window (opt-in).
        Also returns the bucket this caller must refresh (when a view is stale and nobody else is
        refreshing it): it asks DynamoDB, while concurrent callers keep refusing for one more window."""
        if self.reject_cache_seconds <= 0:
            return None, None
        now_monotonic = self.monotonic()
        tats = []
        for part in parts:
            view = self._views.peek(part.key)
            if view is None:
                return None, None
            age = now_monotonic - view.seen
            if age >= self.reject_cache_seconds:
                if part.key in self.refreshing and age < 2 * self.reject_cache_seconds:
                    tats.append(view.tats)
                    continue  # someone is asking DynamoDB about this bucket now
                return None, part.key
            tats.append(view.tats)
        refused = rejection(parts, tats, now)
        if refused is not None:
            refused.decided_locally = True
        return refused, None

    # -- the idle-form queue ----------------------------------------------------------------------
    def plan(self, parts: Sequence[Part], clock: Callable[[], int], combine: bool = False) -> Flow[Plan]:
        """When this acquire may write, and from which views. `combine` (a single-bucket acquire that
        may share a write): rather than queue, it joins the bucket's open batch (a plan `riding` it: it
        writes nothing, and Batch.ride waits for the outcome), or leads a new one."""
        keys = [part.key for part in parts]
        ticket: Gate | None = None
        leading: Batch | None = None
        try:
            while True:
                # Checking for a write in flight and registering this one is one step, or two threads
                # could both see none and race each other.
                with self._lock:
                    if ticket is not None:
                        self._leave_queue(ticket)
                        self._take_turn(keys, ticket)
                    blocked = self._blocked_key(keys, queued_ok=ticket is not None)
                    if blocked is None:
                        ticket = None
                        return self._register(parts, keys, clock(), leading)
                    if combine and leading is None:
                        batch = self._batches.get(blocked)
                        if batch is None:
                            leading = self._batches[blocked] = Batch(parts[0])
                        elif batch.join(parts[0]):
                            return Plan(0, [], [], [], [], None, riding=batch)
                    ticket = Gate()
                    self._queues.setdefault(blocked, deque()).append(ticket)
                yield Await(ticket, IDLE_WAIT_LIMIT)
        except BaseException:
            with self._lock:
                if ticket is not None:  # closed while queued: never hold up the ones behind
                    self._leave_queue(ticket)
                    self._take_turn(keys, ticket)
                    self._let_next_go(keys)
                if leading is not None:  # nothing was written: its members write on their own
                    self._close_batch(keys[0], leading)
                    leading.settle(landed=False, refused=True, error=None)
            raise

    def leave_batch(self, batch: Batch, part: Part) -> None:
        with self._lock:
            batch.leave(part)

    def settle_batch(self, batch: Batch, landed: bool, refused: bool, error: BaseException | None,
                     refusal: dict | None, now: int) -> None:
        with self._lock:
            if landed:
                self.combined += batch.members - 1
            batch.settle(landed, refused, error, refusal, now)

    def _close_batch(self, key: Key, batch: Batch) -> Part | None:
        if self._batches.get(key) is batch:
            del self._batches[key]
        return batch.combined()

    def _register(self, parts: Sequence[Part], keys: Sequence[Key], now: int, leading: Batch | None) -> Plan:
        combined = self._close_batch(keys[0], leading) if leading is not None else None
        written = parts if combined is None else (combined,)
        seen = [self._views.get(key) for key in keys]  # one lookup per bucket for both
        known = [self._expected(key, view) for key, view in zip(keys, seen)]
        forms = [self._forms(view, expected) for view, expected in zip(seen, known)]
        idle = [part.key for part, form in zip(written, forms) if uses_idle_form(part.level, part.amounts, form, now)]
        token = object()
        started = self.monotonic()
        for key in idle:
            self._in_flight[key] = (started, token)
        predictions = []
        for part, view in zip(written, known):
            predicted = predicted_tats(part.level, part.amounts, view, now)
            self._pending[part.key] = predicted
            predictions.append(predicted)
        self._let_next_go(keys)  # where this write holds no queue, the next in line may plan
        return Plan(now, known, forms, idle, predictions, token, leading if combined is not None else None, combined)

    def done(self, plan: Plan, keys: Sequence[Key]) -> None:
        """The write of `plan` is over (the caller has remembered what it landed, if it did): drop its
        predictions (unless a later write's replaced them) and let the next acquire in each of its
        queues go."""
        with self._lock:
            for key, predicted in zip(keys, plan.predictions):
                if self._pending.get(key) is predicted:
                    del self._pending[key]
            for key in plan.idle:
                entry = self._in_flight.get(key)
                if entry is not None and entry[1] is plan.token:
                    del self._in_flight[key]
            self._let_next_go(plan.idle)

    def _blocked_key(self, keys: Sequence[Key], queued_ok: bool) -> Key | None:
        """A bucket this acquire must queue on: one with this client's idle-form write in flight, or
        (unless it has just been let go from the queue) with others waiting."""
        for key in keys:
            for entry in (self._in_flight.get(key), self._handed.get(key)):
                if entry is not None and self.monotonic() - entry[0] < IDLE_WAIT_LIMIT:
                    return key
            if not queued_ok and self._queues.get(key):
                return key
        return None

    def _take_turn(self, keys: Sequence[Key], ticket: Gate) -> None:
        """The woken acquire of `ticket` is planning (or gone): the turn it was handed is over."""
        for key in keys:
            entry = self._handed.get(key)
            if entry is not None and entry[1] is ticket:
                del self._handed[key]

    def _let_next_go(self, keys: Sequence[Key]) -> None:
        """Wake the first acquire queued on each of these buckets that has no idle-form write in flight."""
        for key in keys:
            queue = self._queues.get(key)
            handed = self._handed.get(key)
            if handed is not None and self.monotonic() - handed[0] >= IDLE_WAIT_LIMIT:
                del self._handed[key]  # never taken up (its acquire is gone): the turn passes on
                handed = None
            if queue and key not in self._in_flight and handed is None:
                ticket = queue.popleft()
                self._handed[key] = (self.monotonic(), ticket)
                ticket.open()
            if queue is not None and not queue:
                del self._queues[key]

    def _leave_queue(self, ticket: Gate) -> None:
        for key, queue in list(self._queues.items()):
            if ticket in queue:
                queue.remove(ticket)
                if not queue:
                    del self._queues[key]
