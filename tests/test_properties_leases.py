"""Random interleavings of acquire, adjust, refund and finish on one bucket (and its cascade parent),
with the clock moving and writes failing, run through the real flows against the embedded server.

After every step the bucket as the server holds it must equal a model kept by the test:
- each level's consumed counter is the sum of what the leases hold there (nothing lost, nothing twice),
  and each lease's own bookkeeping (LeaseState) equals the model's;
- each limit's theoretical arrival time is exactly the model's (GCRA on integers);
- available tokens = min(capacity, capacity - net consumption + refill) since the last time the bucket
  was written full, up to the < 1 ns each write's cost is rounded up (FakeClock: no other slack).

Failed writes are throttled by the proxy past the retry budget, so they are never applied: the policy
("block" raises, "allow" counts) must then leave both the server and the lease unchanged for that level."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from botocore.config import Config
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle, RuleBasedStateMachine, consumes, initialize, invariant, multiple, rule, run_state_machine_as_test,
)

from conftest import FakeClock
from fault_proxy import FaultProxy
from zae_limiter import Limit, RateLimitExceeded, RateLimiterUnavailable, SyncRateLimiter, schema
from zae_limiter.bucket import admits, available, cost_ns

pytestmark = pytest.mark.server

LIMITS = (Limit.per_minute("rpm", 10), Limit("tpm", 1_000, 100, 60))  # tpm refills slowly: debt lasts
BY_NAME = {limit.name: limit for limit in LIMITS}
NAMES = tuple(BY_NAME)


class Boom(Exception):
    pass


@dataclass
class Bucket:
    """The model of one level's bucket item: GCRA state per limit and the counters."""

    tat: dict[str, int | None] = field(default_factory=lambda: dict.fromkeys(NAMES))
    counter: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NAMES, 0))
    # Per limit: when the bucket was last written full (an acquire in the idle form), the net thousandths
    # since, and how many writes since (each may round its cost up by < 1 ns).
    anchor: dict[str, tuple[int, int, int] | None] = field(default_factory=lambda: dict.fromkeys(NAMES))

    def move(self, name: str, milli: int, cost: int, now: int, acquire: bool, margin: int = 0,
             observed: int | None = None) -> None:
        tat = self.tat[name]
        # Within the idle form's margin (now <= tat < now + margin) either form is right: the busy form
        # (tat + cost) or the idle form (now + margin + cost, holding back refill). The client picks;
        # the model takes the one the server shows, and only one of those two.
        overlap = acquire and tat is not None and now <= tat < now + margin
        if acquire and (tat is None or tat < now or (overlap and observed != tat + cost)):
            # The idle form: written full at `now + margin` (see acquire.py), then taken from.
            self.tat[name] = now + margin + cost
            self.anchor[name] = (now + margin, milli, 1)
        elif tat is None:  # an adjust of a limit never written: if_not_exists(tat, now) + cost
            self.tat[name] = now + cost
            self.anchor[name] = (now, milli, 1)
        else:
            self.tat[name] = (now if tat is None else tat) + cost
            at, net, writes = self.anchor[name]  # type: ignore[misc]
            self.anchor[name] = (at, net + milli, writes + 1)
        self.counter[name] += milli


@dataclass
class ModelLease:
    context: object
    lease: object
    held: list[dict[str, int]]  # thousandths per level and limit
    costs: list[dict[str, int]]  # ns per level and limit


class LeaseMachine(RuleBasedStateMachine):
    # Set by the test function (fixtures are not available to a state machine), and shared by its
    # examples: each example works on entities and a resource of its own, and the clock only moves on.
    proxy: FaultProxy
    table: str
    policy: str
    clock: FakeClock
    limiter: SyncRateLimiter

    leases = Bundle("leases")

    def teardown(self) -> None:
        self.proxy.clear()

    @initialize(cascade=st.booleans())
    def setup(self, cascade: bool) -> None:
        run = uuid.uuid4().hex[:8]
        self.resource = f"r{run}"
        self.entities = [f"child{run}"]
        if cascade:
            self.entities.append(f"parent{run}")
            self.limiter.create_entity(self.entities[1])
            self.limiter.create_entity(self.entities[0], parent_id=self.entities[1], cascade=True)
        self.buckets = [Bucket() for _ in self.entities]
        # The idle form's margin (0 where the limiter has none): it holds back refill, never admits more.
        self.margin = getattr(self.limiter._core, "idle_margin_ns", 0)
        self.open: list[ModelLease] = []  # inside their block
        self.every: list[ModelLease] = []  # every lease admitted, open or not

    # -- faults: the next write of one level is throttled past the budget, so it is not applied -----
    def _failing(self, level: int | None) -> None:
        self.proxy.clear()
        if level is not None:
            pk = schema.entity_pk(self.entities[level])
            self.proxy.fail("UpdateItem", "throttle", when=lambda body: body.get("Key", {}).get("PK", {}).get("S") == pk)

    def _level(self, data: st.DataObject) -> int | None:
        """None (every write succeeds) most of the time, else the level whose writes fail."""
        return data.draw(st.one_of(st.none(), st.none(), st.integers(0, len(self.entities) - 1)))

    # -- rules ----------------------------------------------------------------------------------
    @rule(seconds=st.one_of(st.just(0.0), st.floats(0, 3), st.floats(0, 40)))
    def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(target=leases, rpm=st.integers(0, 3000), tpm=st.one_of(st.integers(0, 300_000), st.integers(0, 5)))
    def acquire(self, rpm: int, tpm: int):
        now = self.clock()
        amounts = {"rpm": rpm, "tpm": tpm}
        consume = {name: milli / 1000 for name, milli in amounts.items()}
        expected = all(admits(BY_NAME[n], bucket.tat[n], now, amounts[n]) for bucket in self.buckets for n in NAMES)
        context = self.limiter.acquire(self.entities[0], self.resource, list(LIMITS), consume=consume)
        try:
            lease = context.__enter__()
        except RateLimitExceeded:
            assert not expected, "rejected although every limit had the tokens"
            return multiple()  # nothing to hold
        assert expected, "admitted although a limit lacked the tokens"
        held, costs = [], []
        observed = self._server_tats()
        for bucket, seen in zip(self.buckets, observed):
            level_held, level_costs = {}, {}
            for name in NAMES:
                if amounts[name]:
                    cost = cost_ns(BY_NAME[name], amounts[name])
                    bucket.move(name, amounts[name], cost, now, acquire=True, margin=self.margin, observed=seen.get(name))
                    level_held[name], level_costs[name] = amounts[name], cost
            held.append(level_held)
            costs.append(level_costs)
        model = ModelLease(context, lease, held, costs)
        self.open.append(model)
        self.every.append(model)
        return model

    @rule(model=leases, name=st.sampled_from(NAMES), data=st.data())
    def adjust(self, model: ModelLease, name: str, data: st.DataObject) -> None:
        if model not in self.open:
            return
        held = model.held[0].get(name, 0)
        delta = data.draw(st.integers(-held, 400_000 if name == "tpm" else 4000), label="delta")
        failing = self._level(data)
        self._failing(failing)
        now = self.clock()
        before = self.limiter.unavailable_allowed["adjust"]
        try:
            model.lease.adjust(**{name: delta / 1000})
        except RateLimiterUnavailable:
            assert self.policy == "block" and failing is not None and delta
        finally:
            self.proxy.clear()
        if self.policy == "allow" and failing is not None and delta:
            assert self.limiter.unavailable_allowed["adjust"] == before + 1
        if not delta:
            return
        for index, bucket in enumerate(self.buckets):
            if index == failing:
                continue  # throttled past the budget: not applied, and the lease must not count it
            held_here = model.held[index].get(name, 0)
            if delta <= -held_here:
                # Giving back all a level holds (or more: an earlier write to it failed) returns exactly
                # what it holds, recorded cost included: never credited tokens it did not give.
                moved, cost = -held_here, -model.costs[index].get(name, 0)
            else:
                moved, cost = delta, cost_ns(BY_NAME[name], delta)
            if moved or cost:  # a level with nothing to move is not written (one limit per adjust here)
                bucket.move(name, moved, cost, now, acquire=False)
                model.held[index][name] = held_here + moved
                model.costs[index][name] = model.costs[index].get(name, 0) + cost

    @rule(model=consumes(leases), data=st.data())
    def refund(self, model: ModelLease, data: st.DataObject) -> None:
        """The block raises: the lease gives back everything it holds, level by level."""
        if model not in self.open:
            return
        self.open.remove(model)
        failing = self._level(data)
        self._failing(failing)
        now = self.clock()
        try:
            assert model.context.__exit__(Boom, Boom(), None) is False  # the caller's error propagates
        finally:
            self.proxy.clear()
        for index, bucket in enumerate(self.buckets):
            if index == failing:
                continue  # this level keeps what the lease took there
            for name, milli in model.held[index].items():
                if milli or model.costs[index][name]:
                    bucket.move(name, -milli, -model.costs[index][name], now, acquire=False)
                model.held[index][name] = 0
                model.costs[index][name] = 0

    @rule(model=consumes(leases))
    def finish(self, model: ModelLease) -> None:
        if model in self.open:
            self.open.remove(model)
            assert model.context.__exit__(None, None, None) is False

    # -- what must hold after every step ---------------------------------------------------------
    def _items(self) -> list[dict | None]:
        # A consistent read of every level's item, through the limiter's own (cheap) data plane.
        return self.limiter._run(self.limiter._core.read_buckets(tuple(self.entities), self.resource))

    def _server_tats(self) -> list[dict[str, int]]:
        return [schema.bucket_tats(item) for item in self._items()] if self.margin else [{} for _ in self.entities]

    @invariant()
    def the_server_holds_exactly_the_model(self) -> None:
        if not hasattr(self, "buckets"):
            return
        items = self._items()
        now = self.clock()
        for index, (item, bucket) in enumerate(zip(items, self.buckets)):
            item = item or {}
            counters, tats = schema.bucket_counters(item), schema.bucket_tats(item)
            # Nothing lost, nothing twice: the counters are what the leases hold, lease by lease.
            assert {n: counters.get(n, 0) for n in NAMES} == bucket.counter
            for name in NAMES:
                assert bucket.counter[name] == sum(model.held[index].get(name, 0) for model in self.every)
            assert {n: tats.get(n) for n in NAMES} == bucket.tat  # GCRA state, to the nanosecond
            for name, limit in BY_NAME.items():
                self._check_tokens(limit, bucket.anchor[name], available(limit, tats.get(name), now), now)
        for model in self.open:  # each open lease knows exactly what it holds, level by level
            state = model.lease._state
            assert [dict(level) for level in state.consumed] == model.held
            assert [dict(level) for level in state.costs] == model.costs

    @staticmethod
    def _check_tokens(limit: Limit, anchor: tuple[int, int, int] | None, tokens: float, now: int) -> None:
        """tokens = min(capacity, capacity - net + refill) since the bucket was last written full."""
        if anchor is None:
            assert tokens == limit.capacity
            return
        at, net, writes = anchor
        # In thousandths scaled by P (ns), to stay in integers.
        unclamped = (limit.capacity_milli - net) * limit.period_ns + limit.refill_milli * (now - at)
        expected = min(limit.capacity_milli * limit.period_ns, unclamped)
        got = tokens * 1000 * limit.period_ns
        # Each write rounds its cost up by < 1 ns, i.e. by < R after scaling, and so does tau.
        slack = (writes + 1) * limit.refill_milli
        assert abs(got - expected) <= slack, (limit.name, tokens, expected / limit.period_ns / 1000)
        if unclamped - slack >= limit.capacity_milli * limit.period_ns:
            assert tokens == limit.capacity  # full: refill beyond the capacity is not kept


@pytest.fixture(scope="module")
def shared(endpoint_url):
    from zae_limiter.local import ensure_table

    table = f"props_{uuid.uuid4().hex[:8]}"
    ensure_table(table, endpoint_url=endpoint_url, region="us-east-1")
    with FaultProxy(endpoint_url) as proxy:
        yield proxy, table


@pytest.mark.parametrize("policy", ["block", "allow"])
def test_random_interleavings_conserve_tokens(shared, endpoint_url, policy):
    proxy, table = shared
    config = Config(connect_timeout=1, read_timeout=30, retries={"mode": "standard", "total_max_attempts": 2})
    clock = FakeClock()
    limiter = SyncRateLimiter(table_name=table, region="us-east-1", endpoint_url=proxy.url, boto_config=config,
                              clock=clock, on_unavailable=policy)
    LeaseMachine.proxy, LeaseMachine.table, LeaseMachine.policy = proxy, table, policy
    LeaseMachine.clock, LeaseMachine.limiter = clock, limiter
    try:
        run_state_machine_as_test(
            LeaseMachine,
            settings=settings(max_examples=20, stateful_step_count=12, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]),
        )
    finally:
        limiter.close()
