"""The limiter against a textbook token bucket: random acquires, adjusts, refunds, clock moves, two
clients, cascade and failing writes, on the default configuration, sync and async.

The model is written from the definition in DESIGN section 13, not from the code: per limit, a balance
and the moment it was last settled, with
    tokens(t) = min(capacity, tokens(t0) + rate * (t - t0))          (exact Fractions)
an acquire at t takes `amount` from every limit (and, with cascade, every parent limit of the same name)
if each holds it (an amount of 0 needs a balance >= 0), else takes nothing; a positive adjust at t takes
`amount` even into debt; a give-back (a negative adjust, or the refund of a lease whose block raised)
returns `amount`, capped at capacity.

The limits are chosen so that a token is a whole number of nanoseconds of refill, so the limiter's integer
arithmetic can be exact and every decision and every balance must equal the model's. Failed writes are
throttled by a proxy past the retry budget, so they are never applied: the policy ("block" raises,
"allow" counts) must then leave both the server and the lease unchanged for that level.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from fractions import Fraction

import pytest
from botocore.config import Config
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle, RuleBasedStateMachine, consumes, initialize, invariant, multiple, rule, run_state_machine_as_test,
)

from conftest import AsyncAdapter, FakeClock
from fault_proxy import FaultProxy
from zae_limiter import Limit, RateLimiter, RateLimitExceeded, RateLimiterUnavailable, SyncRateLimiter
from zae_limiter.core import schema

pytestmark = pytest.mark.server

NANOS = 10**9
# tpm refills slowly, so debt lasts. The parent's limits (stored on the parent) have the same names and
# less room, so either level can be the one that refuses.
CHILD = (Limit.per_minute("rpm", 10), Limit("tpm", 1_000, 100, 60))
PARENT = (Limit.per_minute("rpm", 6, burst=8), Limit("tpm", 500, 50, 60))
NAMES = ("rpm", "tpm")


class Boom(Exception):
    pass


class TextbookBucket:
    """One limit of one entity, exactly as the definition reads."""

    def __init__(self, limit: Limit) -> None:
        self.capacity = Fraction(str(limit.capacity))
        self.rate = Fraction(str(limit.refill_amount)) / (Fraction(str(limit.refill_period_seconds)) * NANOS)  # per ns
        self.tokens = self.capacity  # a bucket never used is full
        self.at: int | None = None

    def now(self, t: int) -> Fraction:
        if self.at is None:
            return self.capacity
        return min(self.capacity, self.tokens + self.rate * (t - self.at))

    def settle(self, t: int, change: Fraction) -> None:
        """Take (change < 0) or give back (change > 0) at t; a give-back is capped at capacity."""
        self.tokens = min(self.capacity, self.now(t) + change)
        self.at = t


@dataclass
class ModelLease:
    context: object
    lease: object
    held: list[dict[str, int]]  # thousandths per level and limit: what the model says the lease holds


class LeaseMachine(RuleBasedStateMachine):
    # Set by the test function (fixtures are not available to a state machine), and shared by its
    # examples: each example works on entities and a resource of its own, and the clock only moves on.
    proxy: FaultProxy
    policy: str
    clock: FakeClock
    clients: list  # the two that act
    observer: object  # reads only, so the acting clients' views of the buckets go stale as they would

    leases = Bundle("leases")

    def teardown(self) -> None:
        self.proxy.clear()

    @initialize(cascade=st.booleans())
    def setup(self, cascade: bool) -> None:
        run = uuid.uuid4().hex[:8]
        self.resource = f"r{run}"
        self.entities = [f"child{run}"]
        limiter = self.clients[0]
        if cascade:
            self.entities.append(f"parent{run}")
            limiter.create_entity(self.entities[1])
            limiter.set_limits(self.entities[1], list(PARENT), resource=self.resource)
            limiter.create_entity(self.entities[0], parent_id=self.entities[1], cascade=True)
        self.model = [{limit.name: TextbookBucket(limit) for limit in limits} for limits in (CHILD, PARENT)[: len(self.entities)]]
        self.open: list[ModelLease] = []
        self.counters = [dict.fromkeys(NAMES, 0) for _ in self.entities]  # every thousandth admitted, net

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
    # Whole refill periods too: a lease's adjust or refund after its bucket refilled is the case that
    # matters to a gateway (estimate, work for a minute, report the real cost).
    @rule(seconds=st.one_of(st.just(0.0), st.floats(0, 3), st.floats(0, 40), st.sampled_from([6.0, 60.0, 600.0])))
    def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(target=leases, client=st.integers(0, 1), rpm=st.integers(0, 3000),
          tpm=st.one_of(st.integers(0, 300_000), st.integers(0, 5)))
    def acquire(self, client: int, rpm: int, tpm: int):
        now = self.clock()
        amounts = {"rpm": rpm, "tpm": tpm}
        admissible = all(
            bucket.now(now) >= Fraction(amounts[name], 1000)
            for level in self.model for name, bucket in level.items()
        )
        # An amount over some level's capacity can never be granted: refused up front as bad input.
        too_big = any(Fraction(amounts[name], 1000) > bucket.capacity for level in self.model for name, bucket in level.items())
        context = self.clients[client].acquire(self.entities[0], self.resource, list(CHILD),
                                               consume={n: m / 1000 for n, m in amounts.items()})
        try:
            lease = context.__enter__()
        except ValueError:
            assert too_big
            return multiple()
        except RateLimitExceeded as refused:
            assert not admissible, f"refused although every limit held the tokens: {refused}"
            assert not too_big
            return multiple()
        assert admissible, "admitted although a limit lacked the tokens"
        held = []
        for index, level in enumerate(self.model):
            for name, bucket in level.items():
                bucket.settle(now, -Fraction(amounts[name], 1000))
                self.counters[index][name] += amounts[name]
            held.append({name: milli for name, milli in amounts.items() if milli})
        model = ModelLease(context, lease, held)
        self.open.append(model)
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
        before = self.clients[0].unavailable_allowed["adjust"] + self.clients[1].unavailable_allowed["adjust"]
        try:
            model.lease.adjust(**{name: delta / 1000})
        except RateLimiterUnavailable:
            assert self.policy == "block" and failing is not None and delta
        finally:
            self.proxy.clear()
        after = self.clients[0].unavailable_allowed["adjust"] + self.clients[1].unavailable_allowed["adjust"]
        assert after == before + (self.policy == "allow" and failing is not None and bool(delta))
        if not delta:
            return
        for index, level in enumerate(self.model):
            if index == failing:
                continue  # not applied, and the lease must not count it
            held_here = model.held[index].get(name, 0)
            # A level never gives back more than the lease holds there (an earlier write to it failed).
            moved = max(delta, -held_here)
            if moved:
                level[name].settle(now, -Fraction(moved, 1000))
                model.held[index][name] = held_here + moved
                self.counters[index][name] += moved

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
        for index, level in enumerate(self.model):
            if index == failing:
                continue  # this level keeps what the lease took there
            for name, milli in model.held[index].items():
                if milli:
                    level[name].settle(now, Fraction(milli, 1000))
                    self.counters[index][name] -= milli
            model.held[index] = {}

    @rule(model=consumes(leases))
    def finish(self, model: ModelLease) -> None:
        if model in self.open:
            self.open.remove(model)
            assert model.context.__exit__(None, None, None) is False

    # -- what must hold after every step ---------------------------------------------------------
    @invariant()
    def every_balance_is_the_textbook_balance(self) -> None:
        if not hasattr(self, "model"):
            return
        now = self.clock()
        for index, (entity_id, level) in enumerate(zip(self.entities, self.model)):
            limits = list(CHILD) if index == 0 else None  # the parent's own stored limits
            available = self.observer.available(entity_id, self.resource, limits)
            expected = {name: bucket.now(now) for name, bucket in level.items()}
            for name in NAMES:
                assert available[name] == pytest.approx(float(expected[name]), abs=1e-9), (entity_id, name)

    @invariant()
    def the_counters_are_what_was_admitted(self) -> None:
        """Nothing lost, nothing twice: each counter is the net of every admitted amount."""
        if not hasattr(self, "model"):
            return
        limiter = self.observer
        items = limiter._run(limiter._core.read_buckets(tuple(self.entities), self.resource))
        for item, expected in zip(items, self.counters):
            counters = schema.bucket_counters(item or {})
            assert {name: counters.get(name, 0) for name in NAMES} == expected
        for model in self.open:  # each open lease knows exactly what it holds, level by level
            assert [dict((n, m) for n, m in level.items() if m) for level in model.lease._state.consumed] == [
                {n: m for n, m in level.items() if m} for level in model.held
            ]


@pytest.fixture(scope="module")
def shared(endpoint_url):
    from zae_limiter.local import ensure_table

    table = f"props_{uuid.uuid4().hex[:8]}"
    ensure_table(table, endpoint_url=endpoint_url, region="us-east-1")
    with FaultProxy(endpoint_url) as proxy:
        yield proxy, table


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("policy", ["block", "allow"])
def test_the_limiter_is_a_textbook_token_bucket(shared, policy, mode):
    proxy, table = shared
    config = Config(connect_timeout=1, read_timeout=30, retries={"mode": "standard", "total_max_attempts": 2})
    clock = FakeClock()

    def client():
        # Only what the test needs changed: the clock, the proxy's endpoint, a short retry budget.
        options = dict(table_name=table, region="us-east-1", endpoint_url=proxy.url, boto_config=config,
                       clock=clock, on_unavailable=policy)
        return SyncRateLimiter(**options) if mode == "sync" else AsyncAdapter(RateLimiter(**options))

    clients = [client(), client()]
    observer = client()
    LeaseMachine.proxy, LeaseMachine.policy, LeaseMachine.clock = proxy, policy, clock
    LeaseMachine.clients, LeaseMachine.observer = clients, observer
    try:
        run_state_machine_as_test(
            LeaseMachine,
            settings=settings(max_examples=30, stateful_step_count=14, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]),
        )
    finally:
        for each in (*clients, observer):
            each.close()
