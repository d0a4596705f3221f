"""The acquire flow with reservoirs (core/acquire_flow.py over state/reservoirs.py), driven by hand with no
table: each request the flow yields is answered by the test, so the order in which acquires run is the
test's, as threads of one process could run them. It holds that the acquires queued for a refill are
admitted by it, with no request of their own, before an acquire that runs meanwhile can spend it; that
a refill refused for its form is sent again with its reserve while the queue waits; and that an acquire
cancelled after its refill admitted it gives its token back."""

from __future__ import annotations

import asyncio

import pytest

from zae_limiter import Limit
from zae_limiter.core import bucket, schema
from zae_limiter.core.acquire import Level, Part
from zae_limiter.core.calls import Await, Call, ConditionFailed
from zae_limiter.core.config import StoredConfig
from zae_limiter.state.limiter_core import LimiterCore

RPS = Limit.per_second("rps", 2000)
TOKEN = bucket.cost_ns(RPS, 1000)
KEY = ("k", "gpt")


class Clocks:
    """The bucket's clock (ns) and the reservoirs' (s), moved together by the test."""

    def __init__(self) -> None:
        self.ns = 10**18
        self.s = 1_000.0

    def step(self, seconds: float) -> None:
        self.ns += int(seconds * 1e9)
        self.s += seconds


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def core(clocks) -> LimiterCore:
    core = LimiterCore("t", clock=lambda: clocks.ns, monotonic=lambda: clocks.s, config_cache_seconds=60,
                       reservoir_seconds=0.2)
    core.configs.seed(*KEY, StoredConfig(None, (RPS,), None))
    return core


def start(core: LimiterCore):
    """An acquire of one token: its flow and the first instruction it yields (None: admitted locally)."""
    flow = core.acquire(*KEY, None, {"rps": 1})
    try:
        return flow, next(flow)
    except StopIteration as done:
        assert done.value.local
        return flow, None


def land(flow, call: Call, tat: int):
    """Answer the write as DynamoDB would a bucket at `tat`; returns what the flow does next."""
    values, expression = call.request["ExpressionAttributeValues"], call.request["UpdateExpression"]
    added = int(values[":k0"]["N"])
    after = tat + added if "#b0 = #b0 + :k0" in expression else added
    try:
        return after, flow.send({"Attributes": {schema.tat_attr("rps"): schema.n(after)}})
    except StopIteration as done:
        return after, done.value


def hot(core: LimiterCore, clocks: Clocks) -> int:
    """50 acquires a millisecond apart (a reserve of tens of tokens), then the reserve spent; returns the
    bucket's tat."""
    tat = 0
    for _ in range(50):
        flow, call = start(core)
        if call is not None:
            tat, _ = land(flow, call, tat)
        clocks.step(0.001)
    while core.reservoirs.take([Part(Level("k", (RPS,)), "gpt", {"rps": 1000})]):
        pass
    return tat


def nearly_empty(core: LimiterCore, clocks: Clocks, tokens: int) -> int:
    """Another client took the bucket down to one token plus `tokens` (this client saw it in an answer):
    the next refill reserves `tokens`. Returns the bucket's tat."""
    tat = bucket.clock(RPS, clocks.ns) + RPS.tau_ns - TOKEN - tokens * TOKEN
    core.views.refused(KEY, {"rps": tat})
    return tat


def test_the_acquires_queued_for_a_refill_are_admitted_by_it_before_one_that_runs_meanwhile(core, clocks):
    hot(core, clocks)
    tat = nearly_empty(core, clocks, 2)
    writer, call = start(core)
    assert isinstance(call, Call)  # the first to miss writes the refill...
    queued = [start(core) for _ in range(2)]
    assert all(isinstance(waiting, Await) for _, waiting in queued)  # ...the next ones queue for it
    _, lease = land(writer, call, tat)
    assert not lease.local
    newcomer, its_call = start(core)  # an acquire that runs before the queued ones are resumed
    assert isinstance(its_call, Call)  # finds the refill taken by the queue: it writes the next one
    for flow, waiting in queued:
        assert waiting.gate.opened
        with pytest.raises(StopIteration) as done:
            flow.send(None)
        assert done.value.value.local  # admitted by the refill, no request of its own
    assert core.reservoirs.local_admissions >= 2


def test_a_refill_refused_for_its_form_is_sent_again_with_its_reserve_while_the_queue_waits(core, clocks):
    hot(core, clocks)
    tat = nearly_empty(core, clocks, 2)
    writer, call = start(core)
    first = int(call.request["ExpressionAttributeValues"][":k0"]["N"])
    assert first == 3 * TOKEN  # its token and a reserve of two, in the busy form the view says
    flow, waiting = start(core)
    # Refused: the bucket had gone idle meanwhile (its tat behind the clock), with room for it all.
    idle = bucket.clock(RPS, clocks.ns) - 1
    again = writer.throw(ConditionFailed({schema.tat_attr("rps"): schema.n(idle)}))
    assert isinstance(again, Call) and "#b0 = :k0" in again.request["UpdateExpression"]  # the right form now
    sent = int(again.request["ExpressionAttributeValues"][":k0"]["N"]) - bucket.clock(RPS, clocks.ns)
    assert sent >= first  # with a reserve, at least the one refused (the item shows room for more)
    assert not waiting.gate.opened  # the queue waits for it
    land(writer, again, idle)
    with pytest.raises(StopIteration) as done:
        flow.send(None)
    assert done.value.value.local


def test_an_acquire_cancelled_after_its_refill_admitted_it_gives_its_token_back(core, clocks):
    hot(core, clocks)
    tat = nearly_empty(core, clocks, 2)
    writer, call = start(core)
    flow, waiting = start(core)
    land(writer, call, tat)
    held = core.reservoirs._reserves[KEY].units["rps"]
    with pytest.raises(asyncio.CancelledError):
        flow.throw(asyncio.CancelledError())  # its task was cancelled before it saw the admission
    assert core.reservoirs._reserves[KEY].units["rps"] == held + TOKEN
