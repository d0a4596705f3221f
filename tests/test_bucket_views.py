"""state.bucket_views: what one client believes of a bucket only ever picks a write's form. After a
refused write returns the item, the next write must be built on that item, not on predictions of this
client's writes in flight: those were built on the view the item has just shown wrong. (Kept, they chained
upward, each new prediction on the last, until every write picked the busy form of an idle bucket, failed,
and the acquire ended in BucketContention: seen in the benchmark's hot-cascade cells.)"""

from __future__ import annotations

from zae_limiter.core import bucket
from zae_limiter.core.acquire import Level, Part, uses_idle_form
from zae_limiter.core.limits import Limit
from zae_limiter.state.bucket_views import BucketViews

RPS = Limit.per_second("rps", 40, burst=10)  # one token: 25 ms of the bucket's clock
NOW = 1_800_000_000 * 10**9
PART = Part(Level("key", (RPS,)), "gpt", {"rps": 1000})


def plan(views: BucketViews, now: int):
    flow = views.plan([PART], lambda: now)
    try:
        next(flow)
    except StopIteration as done:
        return done.value
    raise AssertionError("the plan waited: no write of this client should hold the bucket here")


def test_a_refusal_replaces_the_predictions_of_writes_in_flight_with_the_item() -> None:
    views = BucketViews(100, monotonic=lambda: 0.0, reject_cache_seconds=0)
    views.remember(PART.key, {"rps": NOW + 100_000_000}, complete=True)  # busy, 100 ms ahead
    first = plan(views, NOW)  # busy form: its prediction is the tat plus one token
    second = plan(views, NOW + 1)  # built on the first one's prediction
    cost = bucket.cost_ns(RPS, 1000)
    assert second.known[0]["rps"] == NOW + 100_000_000 + cost  # predictions chain while writes are in flight
    # The first write is refused and its item shows the bucket idle: it refilled while this client's
    # view was old (another client's refunds, or time this client spent elsewhere).
    idle = {"rps": NOW - 2 * 10**9}
    views.refused(PART.key, idle)
    views.done(first, [PART.key])
    assert views.expected(PART.key) == idle
    third = plan(views, NOW + 2)
    assert third.known[0] == idle
    assert uses_idle_form(PART.level, PART.amounts, third.known[0], NOW + 2)  # the form the bucket is in
    views.done(second, [PART.key])  # the second write ends after: its gone prediction is no one's to drop
    views.done(third, [PART.key])
    assert views.expected(PART.key) == idle
