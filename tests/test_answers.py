"""What a DynamoDB answer means (zae_limiter/core/answers.py): the one definition both transports follow.
Expected values come from the DynamoDB API reference: a transaction's ClientRequestToken makes a resend
within 10 minutes return without applying it again; a conditional write sent again fails on what the
first send did; ADD adds twice; a put or delete without condition sets. x-amz-crc32 is the CRC32 of the
answer's body, as botocore checks it (botocore/retries/special.py)."""

from __future__ import annotations

import binascii
import json

import pytest

from zae_limiter import RateLimiterUnavailable
from zae_limiter.core.answers import (
    RETRYABLE_CODES,
    AnswerLost,
    WriteOutcomeUnknown,
    attempt_budget,
    decode_answer,
    is_idempotent,
    outcome_unknown,
    passed_on_by_a_gateway,
)

KEY = {"PK": {"S": "ENTITY#k"}, "SK": {"S": "#META"}}


@pytest.mark.parametrize(
    "operation, request_, idempotent",
    [
        ("GetItem", {"Key": KEY}, True),
        ("BatchGetItem", {"RequestItems": {}}, True),
        ("Query", {}, True),
        # An UpdateItem that only sets given values and removes attributes, unconditionally (the
        # resource and system defaults, a stamp with no owner): a second send leaves what the first did.
        ("UpdateItem", {"Key": KEY, "UpdateExpression": "SET #a = :a, #b = :b REMOVE #c"}, True),
        ("UpdateItem", {"Key": KEY, "UpdateExpression": "SET #a = :a", "ReturnValues": "UPDATED_NEW"}, True),
        ("UpdateItem", {"Key": KEY, "UpdateExpression": "REMOVE #c"}, True),
        # Anything else is not: a counter moves twice, a condition the first send changed fails on the
        # second, old values returned by a resend are the first send's, an expression not understood.
        ("UpdateItem", {"Key": KEY, "UpdateExpression": "SET #n = #n + :one"}, False),
        ("UpdateItem", {"Key": KEY, "UpdateExpression": "SET #n = if_not_exists(#n, :zero)"}, False),
        ("UpdateItem", {"Key": KEY, "UpdateExpression": "SET #l = list_append(#l, :v)"}, False),
        ("UpdateItem", {"Key": KEY, "UpdateExpression": "ADD n :one"}, False),
        ("UpdateItem", {"Key": KEY, "UpdateExpression": "REMOVE #l[0]"}, False),  # twice: two elements gone
        ("UpdateItem", {"Key": KEY, "UpdateExpression": "SET #a = :a DELETE #s :v"}, False),
        ("UpdateItem", {"Key": KEY, "UpdateExpression": "SET #a = :a", "ConditionExpression": "#o = :me"}, False),
        ("UpdateItem", {"Key": KEY, "UpdateExpression": "SET #a = :a", "Expected": {"o": {"Exists": False}}}, False),
        ("UpdateItem", {"Key": KEY, "UpdateExpression": "SET #a = :a", "ReturnValues": "ALL_OLD"}, False),
        ("UpdateItem", {"Key": KEY, "UpdateExpression": "SET #a = :a", "ReturnValues": "UPDATED_OLD"}, False),
        ("UpdateItem", {"Key": KEY, "UpdateExpression": "SET a = :a"}, False),  # not the shape we write: not assumed
        ("UpdateItem", {"Key": KEY}, False),
        ("TransactWriteItems", {"TransactItems": [], "ClientRequestToken": "t-1"}, True),
        ("TransactWriteItems", {"TransactItems": []}, False),
        ("PutItem", {"Item": KEY}, True),  # set_limits
        ("PutItem", {"Item": KEY, "ConditionExpression": "attribute_not_exists(#pk)"}, False),  # create_entity
        ("PutItem", {"Item": KEY, "Expected": {"PK": {"Exists": False}}}, False),
        ("PutItem", {"Item": KEY, "ReturnValues": "ALL_OLD"}, False),  # a resend returns our own item
        ("DeleteItem", {"Key": KEY}, True),  # delete_limits
        ("DeleteItem", {"Key": KEY, "ConditionExpression": "attribute_exists(#pk)"}, False),
        ("BatchWriteItem", {"RequestItems": {}}, True),  # delete_entity: unconditional deletes
        ("CreateTable", {}, False),  # unknown to the rules: never assumed safe
    ],
)
def test_which_requests_may_be_sent_twice(operation, request_, idempotent):
    assert is_idempotent(operation, request_) is idempotent


def crc(body: bytes) -> str:
    return str(binascii.crc32(body))


def test_a_whole_answer_is_decoded():
    body = json.dumps({"Attributes": {"n": {"N": "1"}}}).encode()
    assert decode_answer(200, body, str(len(body)), crc(body)) == {"Attributes": {"n": {"N": "1"}}}
    assert decode_answer(200, b"{}") == {}


@pytest.mark.parametrize(
    "status, body, length, crc32, why",
    [
        (200, b'{"Attributes":', "30", None, "ended after 14 of 30"),
        (200, b'{"n":6}', None, crc(b'{"n":5}'), "x-amz-crc32"),  # a digit changed on the way
        (400, b'{"__type":"x"}', None, "not-a-number", "not a number"),
        (200, b"", None, None, "not DynamoDB's JSON"),  # a 200 always carries a JSON object
        (200, b"<html>", None, None, "not DynamoDB's JSON"),
        (200, b"[1]", None, None, "not DynamoDB's JSON"),
    ],
)
def test_an_answer_that_did_not_arrive_whole_is_lost(status, body, length, crc32, why):
    with pytest.raises(AnswerLost, match=why):
        decode_answer(status, body, length, crc32)


def test_an_error_page_that_is_not_json_is_no_answer_but_not_lost():
    assert decode_answer(503, b"<html>503</html>") is None
    assert passed_on_by_a_gateway(502, None) and passed_on_by_a_gateway(504, None)
    assert not passed_on_by_a_gateway(503, None)  # "unavailable": the request was not taken
    assert not passed_on_by_a_gateway(502, {"__type": "InternalServerError"})  # DynamoDB's own answer


def test_an_unknown_outcome_is_an_outage_that_says_so_and_carries_its_cause():
    cause = AnswerLost("cut")
    error = outcome_unknown("UpdateItem", cause)
    assert isinstance(error, WriteOutcomeUnknown) and isinstance(error, RateLimiterUnavailable)
    assert "may or may not have been applied, so it is not sent again" in str(error) and error.cause is cause


def test_throttling_and_transient_codes_are_retryable():
    assert {"ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
            "InternalServerError", "TransactionInProgressException"} <= RETRYABLE_CODES
    assert "ConditionalCheckFailedException" not in RETRYABLE_CODES and "ValidationException" not in RETRYABLE_CODES


@pytest.mark.parametrize("retries, attempts", [({"total_max_attempts": 3}, 3), ({"max_attempts": 4}, 5), ({}, 3), (None, 3)])
def test_the_attempt_budget_is_counted_as_botocore_counts_it(retries, attempts):
    assert attempt_budget(retries) == attempts
