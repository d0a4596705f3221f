"""The embedded DynamoDB honours a TransactWriteItems' ClientRequestToken as DynamoDB does (moto alone
ignores it): a repeat of a successful call with the same token changes nothing and succeeds, the same
token on other parameters is IdempotentParameterMismatchException, a refused call is not remembered, and
a token is forgotten after 10 minutes. The limiter's data plane relies on this to send a transaction
again after a lost answer (core/answers.py); without it a cascade acquire could be charged twice."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from zae_limiter.local import ensure_table
from zae_limiter.local_server import TOKEN_SECONDS, IdempotentTransactions


@pytest.fixture
def client_and_table(endpoint_url: str):
    table = f"tok_{uuid.uuid4().hex[:8]}"
    ensure_table(table, endpoint_url=endpoint_url, region="us-east-1")
    client = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    return client, table


def add(table: str, amount: int, token: str, condition: str | None = None) -> dict:
    update = {"TableName": table, "Key": {"PK": {"S": "k"}, "SK": {"S": "s"}}, "UpdateExpression": "ADD n :a",
              "ExpressionAttributeValues": {":a": {"N": str(amount)}}}
    if condition:
        update["ConditionExpression"] = condition
    return {"TransactItems": [{"Update": update}], "ClientRequestToken": token}


def counter(client, table: str) -> int:
    item = client.get_item(TableName=table, Key={"PK": {"S": "k"}, "SK": {"S": "s"}}, ConsistentRead=True).get("Item")
    return int(item["n"]["N"]) if item else 0


def test_a_repeated_token_is_applied_once_and_other_parameters_are_refused(client_and_table) -> None:
    client, table = client_and_table
    token = uuid.uuid4().hex
    client.transact_write_items(**add(table, 2, token))
    client.transact_write_items(**add(table, 2, token))  # the resend after a lost answer: succeeds
    assert counter(client, table) == 2
    with pytest.raises(ClientError) as refused:
        client.transact_write_items(**add(table, 5, token))
    assert refused.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"
    assert counter(client, table) == 2
    client.transact_write_items(**add(table, 3, uuid.uuid4().hex))  # another token: applied
    assert counter(client, table) == 5


def test_a_refused_transaction_is_not_remembered(client_and_table) -> None:
    client, table = client_and_table
    token = uuid.uuid4().hex
    with pytest.raises(ClientError) as refused:
        client.transact_write_items(**add(table, 1, token, condition="attribute_exists(n)"))
    assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"
    client.transact_write_items(**add(table, 1, uuid.uuid4().hex))
    client.transact_write_items(**add(table, 1, token, condition="attribute_exists(n)"))  # evaluated again
    assert counter(client, table) == 2


def test_a_token_is_forgotten_after_ten_minutes() -> None:
    now = [1000.0]
    transactions = IdempotentTransactions(clock=lambda: now[0])
    body = json.dumps(add("t", 1, "tok")).encode()
    token = transactions.token_of("DynamoDB_20120810.TransactWriteItems", body)
    assert token == "tok" and transactions.token_of("DynamoDB_20120810.UpdateItem", body) is None
    answer = ("200 OK", [("Content-Type", "application/x-amz-json-1.0")], b"{}")
    transactions.keep(token, body, answer)
    now[0] += TOKEN_SECONDS - 1
    assert transactions.repeat(token, body) == answer
    now[0] += 2
    assert transactions.repeat(token, body) is None
