"""state.combined_writes and the idle-form queue's hand-off, driven as flows with no I/O (deterministic).

The rule under test (DESIGN 13, a plain token bucket): n takes admitted at one instant, one after the
other, leave `max(tat, now) + sum of their costs`, and all n are admitted exactly when their sum is. So
acquires queued behind this client's idle-form write may ride on the next one, as long as their summed
costs fit the capacity; a refused batch leaves each member to decide on its own."""

from __future__ import annotations

import pytest

from zae_limiter.core import bucket
from zae_limiter.core.acquire import Level, Part, bucket_update
from zae_limiter.core.answers import WriteOutcomeUnknown
from zae_limiter.core.calls import Await
from zae_limiter.core.errors import RateLimiterUnavailable, StorageError
from zae_limiter.core.limits import Limit
from zae_limiter.state.bucket_views import BucketViews

RPS = Limit.per_second("rps", 40, burst=10)  # 10 tokens; one costs 25 ms of the bucket's clock
TPM = Limit.per_minute("tpm", 70_000)  # a thousandth costs 857.14... ns: costs round
NOW = 1_800_000_000 * 10**9
LEVEL = Level("key", (RPS, TPM))


def part(rps: int = 1000, tpm: int = 7000, level: Level = LEVEL) -> Part:
    return Part(level, "gpt", {"rps": rps, "tpm": tpm})


def views() -> BucketViews:
    return BucketViews(100, monotonic=lambda: 0.0, reject_cache_seconds=0)


def start(v: BucketViews, p: Part, combine: bool = True):
    """Plan `p`: (the plan, None) when it may go now; (None, the waiting flow) when it queued."""
    flow = v.plan([p], lambda: NOW, combine=combine)
    try:
        instruction = next(flow)
    except StopIteration as done:
        return done.value, None
    assert isinstance(instruction, Await)
    return None, flow


def resume(flow):
    try:
        flow.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("still waiting")


def ride(batch):
    flow = batch.ride()
    try:
        instruction = next(flow)
    except StopIteration as done:
        return done.value
    assert isinstance(instruction, Await) and instruction.gate is batch.gate
    raise AssertionError("the batch was not settled")


def leader_and_rider():
    """A write in flight, a leader queued behind it and one rider; the write lands and the leader's
    turn comes: (the views, the rider's plan, the leader's plan)."""
    v = views()
    first, _ = start(v, part())
    _, leader = start(v, part())
    rider, _ = start(v, part())
    v.done(first, [("key", "gpt")])
    return v, rider, resume(leader)


def test_acquires_queued_behind_an_idle_write_ride_on_the_next_one_with_their_summed_costs() -> None:
    v = views()
    first, _ = start(v, part())  # a bucket never seen: the idle form, in flight
    assert first.idle == [("key", "gpt")]
    _, leader = start(v, part())  # queued behind it, and leads the next batch
    riders = [start(v, part(rps=2000, tpm=3000))[0] for _ in range(3)]
    assert all(r.riding is not None and r.riding is riders[0].riding for r in riders)  # joined, not queued
    batch = riders[0].riding
    v.done(first, [("key", "gpt")])
    plan = resume(leader)
    assert plan.batch is batch and batch.members == 4
    assert plan.combined.amounts == {"rps": 1000 + 3 * 2000, "tpm": 7000 + 3 * 3000}
    # Each member's own cost, rounded in the limit's favour as its own write would be: so each lease's
    # refund gives back exactly what was charged for it.
    rider_amounts = {"rps": 2000, "tpm": 3000}
    for limit in (RPS, TPM):
        own = bucket.cost_ns(limit, part().amounts[limit.name])
        assert batch.costs[limit.name] == own + 3 * bucket.cost_ns(limit, rider_amounts[limit.name])
    assert bucket.cost_ns(TPM, 7000 + 3 * 3000) < batch.costs["tpm"]  # the sum's own cost rounds less
    # The request: the summed amounts counted, the summed costs charged, four acquires counted.
    request = bucket_update("t", LEVEL, "gpt", plan.combined.amounts, NOW, plan.known[0], costs=batch.costs,
                            acquires=batch.members)
    values = request["ExpressionAttributeValues"]
    assert values[":one"] == {"N": "4"}
    assert values[":k1"] == {"N": str(NOW + batch.costs["tpm"])}  # idle form: now + the charged cost
    assert values[":u1"] == {"N": str(7000 + 3 * 3000)}
    v.settle_batch(batch, landed=True, refused=False, error=None, refusal=None, now=NOW)
    assert all(ride(r.riding) is True for r in riders)
    assert v.combined == 3


def test_a_batch_holds_no_more_than_the_capacity_so_a_full_bucket_admits_all_of_it() -> None:
    v = views()
    first, _ = start(v, part())
    _, leader = start(v, part(rps=1000))
    joined = [start(v, part(rps=1000)) for _ in range(12)]
    riders = [plan for plan, _ in joined if plan is not None]
    queued = [flow for plan, flow in joined if plan is None]
    assert len(riders) == 9 and len(queued) == 3  # 10 tokens: the leader and 9 more
    batch = riders[0].riding
    assert batch.costs["rps"] == RPS.tau_ns  # exactly the capacity
    for flow in queued:
        flow.close()


def test_only_the_same_configuration_without_soft_limits_joins() -> None:
    v = views()
    first, _ = start(v, part())
    _, leader = start(v, part())
    newer = Level("key", (RPS, TPM), version=7)  # the configuration changed since
    plan, waiting = start(v, part(level=newer))
    assert plan is None and waiting is not None  # queued behind, in its own turn
    plan, waiting_plain = start(v, part(), combine=False)  # soft limits, a reservoir or a retry: no batch
    assert plan is None and waiting_plain is not None
    plan, _ = start(v, part(level=Level("key", (RPS, TPM))))  # an equal configuration read again: joins
    assert plan.riding is not None
    for flow in (leader, waiting, waiting_plain):
        flow.close()


def test_a_refused_batch_leaves_each_member_to_decide_from_the_returned_item() -> None:
    v, rider, plan = leader_and_rider()
    item = {"PK": {"S": "x"}}
    v.settle_batch(plan.batch, landed=False, refused=True, error=None, refusal=item, now=NOW + 5)
    assert ride(rider.riding) is False
    assert rider.riding.refusal is item and rider.riding.now == NOW + 5


def test_a_leader_that_stops_waiting_before_it_writes_lets_its_members_write_alone() -> None:
    v = views()
    first, _ = start(v, part())
    _, leader = start(v, part())
    rider, _ = start(v, part())
    leader.close()  # cancelled while queued: nothing was written for anyone
    assert ride(rider.riding) is False and rider.riding.refusal is None
    plan, _ = start(v, part())  # the batch is gone: a new arrival queues and leads afresh
    assert plan is None


def test_a_member_that_stops_waiting_before_the_write_is_built_is_not_written() -> None:
    v = views()
    first, _ = start(v, part())
    _, leader = start(v, part())
    rider, _ = start(v, part(rps=3000, tpm=1000))
    v.leave_batch(rider.riding, part(rps=3000, tpm=1000))
    v.done(first, [("key", "gpt")])
    plan = resume(leader)
    assert plan.batch is None and plan.combined is None  # only the leader is left: its own write


@pytest.mark.parametrize(
    "error, raised",
    [
        (WriteOutcomeUnknown("lost"), WriteOutcomeUnknown),
        (RateLimiterUnavailable("refused to connect"), RateLimiterUnavailable),
        (StorageError("access denied", "AccessDeniedException"), StorageError),
        (KeyboardInterrupt(), WriteOutcomeUnknown),  # the leader stopped while its write was out
    ],
)
def test_a_write_that_ended_without_an_answer_ends_every_member_the_same_way(error, raised) -> None:
    v, rider, plan = leader_and_rider()
    v.settle_batch(plan.batch, landed=False, refused=False, error=error, refusal=None, now=NOW)
    with pytest.raises(raised) as info:
        ride(rider.riding)
    assert type(info.value) is raised  # a lost answer is never reported as a plain outage
    assert v.combined == 0


def test_the_turn_handed_to_a_woken_acquire_is_its_own() -> None:
    """When a write lands, the first acquire queued behind it is woken; the acquire that just finished
    (still running) must not plan before it. Before the hand-off was kept, it always did: measured, one
    thread wrote for 170 ms while 31 waited, each woken one finding the bucket taken again."""
    v = views()
    first, _ = start(v, part(), combine=False)
    _, woken = start(v, part(), combine=False)
    v.done(first, [("key", "gpt")])
    plan, newcomer = start(v, part(), combine=False)  # before the woken one has run
    assert plan is None, "a newcomer planned in the turn handed to the woken acquire"
    mine = resume(woken)
    assert mine.idle == [("key", "gpt")]
    v.done(mine, [("key", "gpt")])
    assert resume(newcomer).idle == [("key", "gpt")]


def test_a_turn_never_taken_up_passes_on() -> None:
    clock = [0.0]
    v = BucketViews(100, monotonic=lambda: clock[0], reject_cache_seconds=0)
    first, _ = start(v, part(), combine=False)
    _, gone = start(v, part(), combine=False)
    v.done(first, [("key", "gpt")])  # the turn is handed to `gone`, which never runs again
    clock[0] = 1.0  # IDLE_WAIT_LIMIT later
    plan, _ = start(v, part(), combine=False)
    assert plan is not None and plan.idle == [("key", "gpt")]
