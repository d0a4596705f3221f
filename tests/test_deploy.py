"""The opt-in deploy tier (`pytest -m deploy`): a real `pulumi up` and `destroy` of the component against
the embedded moto server, through the Automation API. Skipped, with the reason printed, where the Pulumi
CLI or its AWS plugin is missing (as on the machines that build this project)."""

from __future__ import annotations

import pytest

from zae_limiter import Limit, SyncRateLimiter
from zae_limiter.transport.clients import make_client

pytestmark = pytest.mark.deploy


def test_up_creates_a_working_table_and_aggregator(zae_limiter_stack):
    stack = zae_limiter_stack
    assert stack.outputs["table_name"] == stack.table_name
    dynamodb = make_client("dynamodb", stack.region, stack.endpoint_url)
    table = dynamodb.describe_table(TableName=stack.table_name)["Table"]
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {"GSI1", "GSI2"}
    lambdas = make_client("lambda", stack.region, stack.endpoint_url)
    function = lambdas.get_function(FunctionName=stack.outputs["function_name"])["Configuration"]
    assert function["Runtime"] == "python3.12"
    with SyncRateLimiter(table_name=stack.table_name, region=stack.region, endpoint_url=stack.endpoint_url) as limiter:
        with limiter.acquire("k", "api", [Limit.per_minute("rpm", 2)], consume={"rpm": 1}):
            pass
        assert limiter.available("k", "api", [Limit.per_minute("rpm", 2)])["rpm"] < 2


def test_status_reports_the_deployed_stack(zae_limiter_stack):
    state = zae_limiter_stack.manager.status()
    assert state.last_result == "succeeded"
    assert state.resource_count and state.resource_count > 5
    assert state.outputs["table_arn"].endswith(zae_limiter_stack.table_name)
