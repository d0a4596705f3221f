"""A change of stored limits whose answer is lost, or that meets another admin's change: the UpdateItem of
an entity's limits item is conditional on the configuration's version (core/stamps.py), so no transport
sends it twice; the item (or the bucket) read back says what landed, and the last call to return wins at
a version above every stamp. Through the fault proxy, on both transports (lean data plane and boto3)."""

from __future__ import annotations

import pytest

from test_reliability_faults import api, dynamodb, make, proxy, table_name  # noqa: F401
from test_reliability_lost_answers import limits_item, sent
from zae_limiter import Limit, ResourceDisabled, SyncRateLimiter
from zae_limiter.core import schema

pytestmark = pytest.mark.server


@pytest.mark.parametrize("path", ["lean", "boto3"])
@pytest.mark.parametrize("fault", ["lost", "drop"])
def test_a_version_stamp_whose_answer_is_lost_is_read_back(make, proxy, dynamodb, table_name, api, path, fault, clock):
    """set_limits stamps its version on the entity's buckets with a conditional UpdateItem, never resent by
    a transport: the bucket read back says whether it landed ("lost": it did) or must be sent again
    ("drop": it never arrived). Either way the bucket ends with the new version, so an acquire built
    from the older configuration is refused by it."""
    limiter = make(lean_hot_path=path == "lean")
    entity = f"s-{api}"
    limiter.set_limits(entity, [Limit.per_minute("rpm", 5)], resource=api)
    with limiter.acquire(entity, api, consume={"rpm": 1}):
        pass
    clock.advance(1)
    proxy.fail("UpdateItem", fault, times=1, when=lambda body: body["Key"]["SK"]["S"].startswith(schema.BUCKET_PREFIX))
    since = len(proxy.operations())
    limiter.set_limits(entity, [Limit.per_minute("rpm", 9)], resource=api)
    assert sent(proxy, since, "GetItem") == 1  # the bucket read back
    assert sent(proxy, since, "UpdateItem") == (2 if fault == "lost" else 3)  # the limits item, the stamp (again)
    limits_version = schema.version_of(dynamodb.get_item(
        TableName=table_name, Key=schema.entity_limits_key(entity, api), ConsistentRead=True)["Item"])
    bucket = dynamodb.get_item(TableName=table_name, Key=schema.bucket_key(entity, api), ConsistentRead=True)["Item"]
    assert schema.version_of(bucket) == limits_version


@pytest.mark.parametrize("path", ["lean", "boto3"])
def test_a_change_refused_by_another_at_the_same_version_is_written_above_it(make, proxy, table_name, api,
                                                                            endpoint_url, clock, path):
    """Two admins change the same limits item at once, one its limits, the other its disabled flag. On the
    test's fake clock both pick the next version after the stored one (as admins whose clocks are behind
    it do), and the disable lands first. The set_limits write is refused; what the item holds is not this
    write, so it is written again above it. Both changes stay."""
    limiter = make(lean_hot_path=path == "lean")
    entity = f"d-{api}"
    with SyncRateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url, clock=clock) as other:
        other.set_limits(entity, [Limit.per_minute("rpm", 5)], resource=api)
        disabled: list[bool] = []

        def the_other_admin_disables_it_first(body: dict) -> bool:
            if limits_item(body) and not disabled:
                disabled.append(True)
                other.disable(entity, api)
            return False

        proxy.fail("UpdateItem", "forward", when=the_other_admin_disables_it_first)
        limiter.set_limits(entity, [Limit.per_minute("rpm", 7)], resource=api)
        assert disabled
        proxy.clear()
        assert other.get_limits(entity, resource=api) == [Limit.per_minute("rpm", 7)]
        with pytest.raises(ResourceDisabled):
            with other.acquire(entity, api, consume={"rpm": 1}):
                pass


@pytest.mark.parametrize("path", ["lean", "boto3"])
def test_a_lost_change_of_limits_never_sets_the_version_back(make, proxy, dynamodb, table_name, api, endpoint_url, clock, path):
    """Another admin changes the limits between this change's lost answer and what this client does next.
    Before: the change was sent again (SET only, so taken for idempotent) and put back its older version
    over the later one; the bucket kept the later version, so every acquire failed its version check,
    read the older item, and failed again. Now the item read back shows a later version, and this change,
    its caller not yet answered, is written again above it: the last call to return wins, at a version
    above every stamp."""
    limiter = make(lean_hot_path=path == "lean")  # on the test's fake clock, as the other clients
    entity = f"e-{api}"

    def direct() -> SyncRateLimiter:  # another client, straight to the server
        return SyncRateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url, clock=clock)

    with direct() as other:
        other.set_limits(entity, [Limit.per_minute("rpm", 5)], resource=api)
        with other.acquire(entity, api, consume={"rpm": 1}):
            pass  # the bucket, which every change stamps with its version
        lost = proxy.fail("UpdateItem", "lost", times=1, when=limits_item)
        changed: list[bool] = []

        def the_other_admin_changes_them_first(body: dict) -> bool:
            if lost.hits and not changed:
                changed.append(True)
                other.set_limits(entity, [Limit.per_minute("rpm", 9)], resource=api)
            return False

        proxy.fail(None, "forward", when=the_other_admin_changes_them_first)
        limiter.set_limits(entity, [Limit.per_minute("rpm", 7)], resource=api)
        assert changed
        assert limiter.get_limits(entity, resource=api) == [Limit.per_minute("rpm", 7)]
    proxy.clear()
    item = dynamodb.get_item(TableName=table_name, Key=schema.entity_limits_key(entity, api), ConsistentRead=True)["Item"]
    bucket = dynamodb.get_item(TableName=table_name, Key=schema.bucket_key(entity, api), ConsistentRead=True)["Item"]
    assert schema.version_of(bucket) == schema.version_of(item)  # stamped: no acquire is refused for ever
    with direct() as fresh:
        with fresh.acquire(entity, api, consume={"rpm": 1}):
            pass
        # The bucket's state is refill time: the first acquire's 12 s (1 in 5/min) is 1.4 tokens of 7/min,
        # and this one takes 1 more, all at one instant.
        assert fresh.available(entity, api)["rpm"] == pytest.approx(7 - 1.4 - 1, abs=1e-6)
