"""A bucket near full that another client keeps taking from (the hot key from several processes), against
the embedded server, both APIs, the default configuration. Each write of this client is overtaken by the
other client's take, which lands first; the clock moves past that take's tat before this client writes
again (the emulator, or DynamoDB, slower than the limit's token). Guessed from the refused item alone, every
write is an idle-form one that the next take breaks, and the acquire ends in BucketContention. Expected
values come from a plain token bucket (DESIGN.md section 13)."""

from __future__ import annotations

import pytest

from conftest import REGION, FakeClock, RequestCounter, transport_of
from zae_limiter import Limit, SyncRateLimiter
from zae_limiter.core import schema

pytestmark = pytest.mark.server

RPS = Limit.per_second("rps", 40, burst=10)  # 10 tokens, one every 25 ms
ONE = {"rps": 1}


@pytest.mark.parametrize("cascade", [False, True], ids=["one-bucket", "cascade"])
def test_a_client_overtaken_at_every_write_is_admitted_by_its_second(make_limiter, endpoint_url, table_name, dynamodb,
                                                                     cascade):
    clock = FakeClock()
    ours = make_limiter(clock=clock)
    other = SyncRateLimiter(table_name=table_name, region=REGION, endpoint_url=endpoint_url,
                            clock=clock)
    write = "TransactWriteItems" if cascade else "UpdateItem"
    buckets = ("k", "p") if cascade else ("k",)
    try:
        if cascade:  # both buckets near full, one transaction per acquire
            other.create_entity("p")
            other.create_entity("k", parent_id="p", cascade=True)
            other.set_limits("p", [RPS], resource="gpt")
        other.set_limits("k", [RPS], resource="gpt")
        with ours.acquire("k", "gpt", consume=ONE):
            pass  # this client knows the bucket: 9 tokens
        clock.advance(1.0)  # full again (10)
        overtaken = []

        def the_other_client_lands_first(call) -> None:
            if call.operation != write:
                return
            with other.acquire("k", "gpt", consume=ONE):  # at the instant this client's write was built
                overtaken.append(clock.now)
            clock.advance(0.030)  # past that take's tat (25 ms) when this client builds its next write

        transport_of(ours).observers.append(the_other_client_lands_first)
        counter = RequestCounter(ours)
        with ours.acquire("k", "gpt", consume=ONE):
            pass
        transport_of(ours).observers.remove(the_other_client_lands_first)

        # Refused once (the other client's take made the bucket busy), then written in the busy form.
        assert counter.calls.count(write) == 2
        assert len(overtaken) == 2
        for entity in buckets:
            # The token bucket: full (10) at the first take; 30 ms refill (1.2 tokens) fills it again
            # before the second, after which this client's take leaves 8. At that instant, 30 ms on: 9.2.
            assert other.available(entity, "gpt")["rps"] == pytest.approx(9.2, abs=1e-6), entity
            item = dynamodb.get_item(TableName=table_name, Key=schema.bucket_key(entity, "gpt"),
                                     ConsistentRead=True)["Item"]
            assert schema.bucket_counters(item) == {"rps": 4000}, entity  # thousandths: every take once, 2 + 2
    finally:
        other.close()
