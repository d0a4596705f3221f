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


# Several clients on one bucket near full (the hot key from several processes): a refused idle-form
# write's item shows another client's take, and by the time this client builds its next write the clock
# has passed that take's tat again. Guessed from the item alone, that write is idle-form once more and
# lands after the next take of another client: refused each time, until BucketContention.
TOKEN = bucket.cost_ns(RPS, 1000)


def test_after_a_refusal_that_shows_other_takes_the_next_form_expects_them_to_go_on() -> None:
    views = BucketViews(100, monotonic=lambda: 0.0, reject_cache_seconds=0)
    views.remember(PART.key, {"rps": NOW - 10**9}, complete=True)  # full: written a second ago
    first = plan(views, NOW)
    assert first.idle == [PART.key]  # the view says full: idle form, which needs tat < NOW
    moved = {"rps": NOW + TOKEN}  # another client took one token at NOW, first
    views.refused(PART.key, moved, built_from=first.known[0])
    views.done(first, [PART.key])
    later = NOW + TOKEN + 5_000_000  # the retry is built 5 ms past that take's tat
    second = plan(views, later)
    assert second.known[0] == moved  # what decides (a rejection, a reserve) is the item as it stands
    assert uses_idle_form(PART.level, PART.amounts, moved, later)  # guessed from the item: idle again
    assert second.idle == [] and not uses_idle_form(PART.level, PART.amounts, second.forms[0], later)
    assert second.predictions[0]["rps"] == later + TOKEN  # a lower bound of what a landed write leaves
    views.done(second, [PART.key])


def test_a_refusal_that_shows_no_other_take_guesses_from_the_item_alone() -> None:
    views = BucketViews(100, monotonic=lambda: 0.0, reject_cache_seconds=0)
    views.remember(PART.key, {"rps": NOW - 10**9}, complete=True)
    first = plan(views, NOW)
    views.refused(PART.key, {"rps": NOW + TOKEN}, built_from=first.known[0])
    views.done(first, [PART.key])
    later = NOW + TOKEN + 5_000_000
    second = plan(views, later)
    assert second.idle == []  # busy form, expecting other takes: none came, so it is refused
    still = {"rps": NOW + TOKEN}
    views.refused(PART.key, still, built_from=second.known[0])  # the same item: the bucket did not move
    views.done(second, [PART.key])
    third = plan(views, later + 1)
    assert third.forms[0] == still and third.idle == [PART.key]  # the form the bucket is in
    views.done(third, [PART.key])


def test_members_told_of_their_leaders_refusal_keep_what_it_showed() -> None:
    views = BucketViews(100, monotonic=lambda: 0.0, reject_cache_seconds=0)
    views.remember(PART.key, {"rps": NOW - 10**9}, complete=True)
    leader = plan(views, NOW)
    moved = {"rps": NOW + TOKEN}
    views.refused(PART.key, moved, built_from=leader.known[0])
    views.done(leader, [PART.key])
    views.refused(PART.key, moved)  # a combined write's member decides from the same item
    member = plan(views, NOW + TOKEN + 5_000_000)
    assert member.idle == []
    views.done(member, [PART.key])
