"""A cold entity costs one request (config_cache.py, stamps.py): an expired configuration is used as it is
on a bucket the client knows, its version checked by the write, and read again only when it changed.
Both APIs, the default configuration with a short `config_cache_seconds` on a clock of the test's own (entries expire when the
test says, as a rotation through many entities makes each of them expire)."""

from __future__ import annotations

import pytest

from conftest import RequestCounter
from zae_limiter import Limit, ResourceDisabled

TTL = 0.2


class CacheClock:
    """The configuration cache's clock, moved only by `wait_out_the_cache`. On the real clock a loaded
    machine made the acquires a test counts outlast TTL, and an entry expired in their middle."""

    now = 1_000.0

    def __call__(self) -> float:
        return self.now


CACHE_CLOCK = CacheClock()


def expiring(make_limiter):
    """A limiter of the default configuration but `config_cache_seconds=TTL`, its cache on CACHE_CLOCK."""
    limiter = make_limiter(config_cache_seconds=TTL)
    limiter._core.configs.monotonic = CACHE_CLOCK
    return limiter


def wait_out_the_cache() -> None:
    CACHE_CLOCK.now += TTL + 0.05


def acquire(limiter, entity="k", resource="gpt", consume=None):
    with limiter.acquire(entity, resource, consume=consume or {"rpm": 1}) as lease:
        return lease


def test_an_expired_configuration_costs_no_read(make_limiter):
    admin, limiter = make_limiter(), expiring(make_limiter)
    admin.set_limits("k", [Limit.per_minute("rpm", 100)], resource="gpt")
    counter = RequestCounter(limiter)
    acquire(limiter)
    assert counter.calls == ["BatchGetItem", "UpdateItem"]  # never seen: one read, then the write
    for _ in range(2):
        wait_out_the_cache()
        counter.reset()
        acquire(limiter)
        # Expired and unchanged: the write's version check suffices. Only the resource's shared defaults
        # are read again (once per window for every entity on it: test_shared_defaults_are_...).
        assert counter.calls[-1] == "UpdateItem" and counter.calls.count("UpdateItem") == 1
        assert not [pk for pk in counter.keys_read() if pk.startswith("ENTITY#")]


def test_a_change_elsewhere_is_caught_by_the_write_and_read_once(make_limiter):
    admin, limiter = make_limiter(), expiring(make_limiter)
    admin.set_limits("k", [Limit.per_minute("rpm", 100)], resource="gpt")
    acquire(limiter)
    admin.set_limits("k", [Limit.per_minute("rpm", 3)], resource="gpt")  # another client changes it
    wait_out_the_cache()
    counter = RequestCounter(limiter)
    acquire(limiter)
    writes = [call for call in counter.calls if call == "UpdateItem"]
    assert len(writes) == 2  # refused on its version, read again, written
    assert "ENTITY#k" in counter.keys_read()
    # The new limits: 3, less this acquire's 1 and the first one's 0.6 s of refill (1/100 min) read as
    # 1/20 min tokens (the bucket's state is refill time), plus the moment's refill: just under 2.
    assert 1.95 < limiter.available("k", "gpt")["rpm"] < 2.0


@pytest.mark.parametrize("change", ["delete_limits", "disable", "set_parent"])
def test_every_change_to_an_entity_reaches_clients_with_expired_entries(make_limiter, change):
    admin, limiter = make_limiter(), expiring(make_limiter)
    admin.create_entity("org")
    admin.set_limits("org", [Limit.per_minute("rpm", 2)], resource="gpt")
    admin.create_entity("k")
    admin.set_limits("k", [Limit.per_minute("rpm", 100)], resource="gpt")
    acquire(limiter)
    if change == "delete_limits":
        admin.delete_limits("k", "gpt")
        admin.set_resource_defaults("gpt", [Limit.per_minute("rpm", 7)])
    elif change == "disable":
        admin.disable(entity_id="k")
    else:
        admin.set_parent("k", "org", cascade=True)
    wait_out_the_cache()
    if change == "disable":
        with pytest.raises(ResourceDisabled):
            acquire(limiter)
        return
    lease = acquire(limiter)
    if change == "delete_limits":
        assert [limit.capacity for limit in lease._state.parts[0].level.limits] == [7]  # the resource defaults now
    else:
        assert [part.level.entity_id for part in lease._state.parts] == ["k", "org"]  # now cascades


def test_a_cold_cascade_acquire_is_one_transaction_and_sees_its_parent_change(make_limiter):
    admin, limiter = make_limiter(), expiring(make_limiter)
    admin.create_entity("org")
    admin.set_limits("org", [Limit.per_minute("rpm", 100)], resource="gpt")
    admin.create_entity("k", parent_id="org", cascade=True)
    admin.set_limits("k", [Limit.per_minute("rpm", 100)], resource="gpt")
    acquire(limiter)
    wait_out_the_cache()
    counter = RequestCounter(limiter)
    acquire(limiter)
    assert counter.calls.count("TransactWriteItems") == 1
    assert not [pk for pk in counter.keys_read() if pk.startswith("ENTITY#")]  # neither level read again
    admin.set_limits("org", [Limit.per_minute("rpm", 3)], resource="gpt")  # the parent changes
    wait_out_the_cache()
    counter.reset()
    lease = acquire(limiter)
    assert counter.calls.count("TransactWriteItems") == 2  # refused on the parent's version, then written
    assert "ENTITY#org" in counter.keys_read()
    assert lease._state.parts[1].level.limits == (Limit.per_minute("rpm", 3),)


def test_a_bucket_this_client_never_wrote_is_read_first(make_limiter):
    """An expired entry is used only where the bucket is known to exist: a bucket created after the
    entity changed could not carry the change's version."""
    admin, limiter = make_limiter(), expiring(make_limiter)
    admin.set_limits("k", [Limit.per_minute("rpm", 100)])  # the entity's _default_: every resource
    acquire(limiter, resource="gpt")
    admin.set_limits("k", [Limit.per_minute("rpm", 5)])
    wait_out_the_cache()
    counter = RequestCounter(limiter)
    lease = acquire(limiter, resource="new")
    assert counter.calls == ["BatchGetItem", "UpdateItem"]
    assert lease._state.parts[0].level.limits == (Limit.per_minute("rpm", 5),)


def test_shared_defaults_are_read_once_per_window_for_every_entity(make_limiter):
    admin, limiter = make_limiter(), expiring(make_limiter)
    admin.set_resource_defaults("gpt", [Limit.per_minute("rpm", 100)])
    keys = [f"k{i}" for i in range(5)]
    for key in keys:
        acquire(limiter, entity=key)
    wait_out_the_cache()
    counter = RequestCounter(limiter)
    for key in keys:
        acquire(limiter, entity=key)
    # The resource's defaults expired: read once (the first acquire), then every key is one write.
    assert counter.calls == ["BatchGetItem"] + ["UpdateItem"] * len(keys)
