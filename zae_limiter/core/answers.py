"""What a DynamoDB answer means, defined once for both transports (the lean data plane and boto3):
which requests may be sent twice, which error codes are an outage worth retrying, whether an answer
arrived whole, and the exception each answer becomes. Pure: no I/O and no botocore, so the drivers,
the boto3 retry hook and the tests all read the same rules."""

from __future__ import annotations

import json
import random
import re
import zlib
from typing import Any, Mapping

from .calls import ConditionFailed, Sleep, TransactionCanceled
from .errors import RateLimiterUnavailable, StorageError

# Overload or a brief failure on DynamoDB's side: retried within the attempt budget, then an outage.
# The throttling and transient codes of botocore's standard retry mode that DynamoDB answers with.
RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "TransactionInProgressException",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)

# Requests that change nothing: sending one twice is always safe.
READS = frozenset(
    {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems", "DescribeTable", "DescribeTimeToLive", "ListTables"}
)


def is_idempotent(operation: str, request: Mapping[str, Any]) -> bool:
    """Whether sending `request` again, after the first one may have been applied, leaves the table and
    the answer as one send would. Reads; a transaction with a ClientRequestToken (DynamoDB answers a
    resend within 10 minutes without applying it again); a put or delete with no condition and no
    returned old values (it sets; the second send finds what the first left). Never an UpdateItem (ADD
    counts twice, and a condition the first send changed fails on the second) unless it only sets
    attributes to given values and removes others, unconditionally, and returns no old values (a resend
    would return the first send's); nor anything unknown."""
    if operation in READS:
        return True
    if operation == "UpdateItem":
        conditional = request.get("ConditionExpression") or request.get("Expected")
        returns_old = request.get("ReturnValues", "NONE") in ("ALL_OLD", "UPDATED_OLD")
        return not conditional and not returns_old and _only_assigns(request.get("UpdateExpression", ""))
    if operation == "TransactWriteItems":
        return bool(request.get("ClientRequestToken"))
    if operation in ("PutItem", "DeleteItem"):
        conditional = request.get("ConditionExpression") or request.get("Expected")
        return not conditional and request.get("ReturnValues", "NONE") == "NONE"
    if operation == "BatchWriteItem":  # puts and deletes only, never conditional
        return True
    return False


_CLAUSE = re.compile(r"\b(SET|REMOVE|ADD|DELETE)\b")
_ASSIGNMENT = re.compile(r"\s*#\w+\s*=\s*:\w+\s*")
_NAME = re.compile(r"\s*#\w+\s*")


def _only_assigns(expression: str) -> bool:
    """Whether an UpdateExpression is `SET #a = :v, ...` and `REMOVE #b, ...` only: applying it twice
    leaves what applying it once does."""
    parts = _CLAUSE.split(expression)
    if parts[0].strip() or len(parts) == 1:  # text before the first clause, or no clause (AttributeUpdates)
        return False
    for clause, body in zip(parts[1::2], parts[2::2]):
        if clause in ("ADD", "DELETE"):
            return False
        shape = _ASSIGNMENT if clause == "SET" else _NAME  # REMOVE #l[0] twice would remove two elements
        if not all(shape.fullmatch(entry) for entry in body.split(",")):
            return False
    return True


class AnswerLost(Exception):
    """The request may have reached DynamoDB and no whole answer came back: cut off, garbled, or a
    body that does not match its x-amz-crc32. What it did is unknown."""


class WriteOutcomeUnknown(RateLimiterUnavailable):
    """A write that may or may not have been applied; it was not sent again. `create_entity` reads
    the record back to find out; every other caller sees an outage."""


def outcome_unknown(operation: str, cause: BaseException) -> WriteOutcomeUnknown:
    return WriteOutcomeUnknown(
        f"DynamoDB {operation}: no answer ({redact(str(cause)) or type(cause).__name__}); it may or may not "
        "have been applied, so it is not sent again",
        cause,
    )


_CRC32 = re.compile(r"\d{1,10}")


def answer_defect(body: bytes, content_length: str | None, crc32: str | None) -> str | None:
    """Why `body` is not the whole answer its headers announce (a Content-Length it falls short of, an
    x-amz-crc32 it does not match, as botocore checks DynamoDB's), or None."""
    if content_length is not None and content_length.strip().isdigit() and int(content_length) != len(body):
        return f"the answer ended after {len(body)} of {int(content_length)} bytes"
    if crc32 is not None:
        if not _CRC32.fullmatch(crc32.strip()):
            return f"an x-amz-crc32 header that is not a number: {crc32[:20]!r}"
        if zlib.crc32(body) != int(crc32):
            return f"the answer does not match its x-amz-crc32 ({zlib.crc32(body)} against {crc32.strip()})"
    return None


def decode_answer(status: int, body: bytes, content_length: str | None = None, crc32: str | None = None) -> dict[str, Any] | None:
    """DynamoDB's JSON answer; None when an error status carries something else (a load balancer's
    page). AnswerLost when it did not arrive whole: short of its length, a CRC mismatch, or a success
    that is not a JSON object (DynamoDB always answers one, `{}` at least)."""
    defect = answer_defect(body, content_length, crc32)
    if defect is not None:
        raise AnswerLost(defect)
    try:
        answer = json.loads(body.decode()) if body else None  # str: no encoding detection
    except ValueError:  # UnicodeDecodeError included
        answer = None
    if isinstance(answer, dict):
        return answer
    if status == 200:
        raise AnswerLost(f"a success whose answer is not DynamoDB's JSON: {body[:80]!r}")
    return None


# AWS answers a bad signature with the canonical request it expected, session token included
# (InvalidSignatureException: "The Canonical String for this request should have been ...
# x-amz-security-token:IQoJb3...). Messages become exception text, which callers log.
_SECRETS = re.compile(r"(x-amz-security-token\s*[:=]\s*|Signature=)[^\s'\",;\\]+", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with session tokens and request signatures replaced by `<redacted>`."""
    return _SECRETS.sub(r"\1<redacted>", text)


def error_code(answer: Mapping[str, Any]) -> tuple[str, str]:
    """(code, message) of a DynamoDB error answer: `__type` is `com.amazonaws.dynamodb.v20120810#Code`."""
    code = str(answer.get("__type", "")).rpartition("#")[2]
    return code, str(answer.get("message") or answer.get("Message") or "")


def is_retryable(code: str, status: int) -> bool:
    """An answer that means "not now": throttling, a transient failure, any 5xx (DynamoDB's error-handling
    guide marks its 500 and 503 answers "OK to retry")."""
    return code in RETRYABLE_CODES or status >= 500


def passed_on_by_a_gateway(status: int, answer: Mapping[str, Any] | None) -> bool:
    """A 502 or 504 that is not DynamoDB's own JSON: something in between (a proxy, a load balancer) gave up
    on an upstream that may have received the request, so for a write the outcome is unknown."""
    return answer is None and status in (502, 504)


def classify_response(
    operation: str, code: str, message: str, status: int, body: Mapping[str, Any], table: str | None,
    cause: BaseException | None = None,
) -> BaseException:
    """What an error answer from DynamoDB means for flows and callers."""
    message = redact(message)
    if code == "ConditionalCheckFailedException":
        return ConditionFailed(body.get("Item"))
    if code == "TransactionCanceledException":
        return TransactionCanceled([(r.get("Code") or "None", r.get("Item")) for r in body.get("CancellationReasons") or []])
    if is_retryable(code, status):
        return RateLimiterUnavailable(f"DynamoDB {operation} failed: {code}: {message}", cause)
    if code == "ResourceNotFoundException":
        return StorageError(
            f"DynamoDB table {table or '?'} not found ({message}); deploy it with `zae-limiter deploy` "
            "or, on an emulator, create it with zae_limiter.local.ensure_table",
            code,
            cause,
        )
    return StorageError(f"DynamoDB refused {operation}: {code}: {message}", code, cause)


def attempt_budget(retries: Mapping[str, Any] | None) -> int:
    """Attempts in all, from a botocore Config's `retries` (total_max_attempts, or max_attempts retries
    after the first), as botocore counts them."""
    retries = retries or {}
    if "total_max_attempts" in retries:
        return max(1, int(retries["total_max_attempts"]))
    return max(1, int(retries.get("max_attempts", 2)) + 1)


BACKOFF_BASE = 0.025
BACKOFF_CAP = 1.0


def backoff(attempt: int, base: float = 0.005, cap: float = 0.2) -> Sleep:
    """The pause a flow takes before attempt `attempt` + 1 when buckets changed under it or a batch came
    back in part: full jitter, so contending clients spread out instead of colliding again."""
    return Sleep(backoff_seconds(attempt, base, cap))


def backoff_seconds(attempt: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Full-jitter exponential backoff before attempt `attempt` (1 for the first retry)."""
    return random.uniform(0, min(cap, base * 2**attempt))
