"""Executing flows against DynamoDB: the boto3 transport, error classification, sync and async drivers."""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Generator

import botocore.exceptions
from botocore import xform_name

from .calls import Await, Call, ConditionFailed, Parallel, Sleep, TransactionCanceled
from .errors import RateLimiterUnavailable, StorageError
from .dataplane import OPERATIONS as DATAPLANE_OPERATIONS
from .dataplane import DataPlane
from .stats import RequestStats

# Errors worth waiting out: DynamoDB or the network is overloaded or briefly gone. botocore has already
# retried these within its own budget when they reach us.
UNAVAILABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "LimitExceededException",
    }
)
UNAVAILABLE_EXCEPTIONS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.HTTPClientError,
)


# AWS answers a bad signature with the canonical request it expected, session token included
# (InvalidSignatureException: "The Canonical String for this request should have been ...
# x-amz-security-token:IQoJb3...). Messages become exception text, which callers log.
_SECRETS = re.compile(r"(x-amz-security-token\s*[:=]\s*|Signature=)[^\s'\",;\\]+", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with session tokens and request signatures replaced by `<redacted>`."""
    return _SECRETS.sub(r"\1<redacted>", text)


def classify_response(
    operation: str, code: str, message: str, status: int, body: dict[str, Any], table: str | None, cause: BaseException | None = None
) -> BaseException:
    """What an error answer from DynamoDB means for flows and callers; shared by both transports."""
    message = redact(message)
    if code == "ConditionalCheckFailedException":
        return ConditionFailed(body.get("Item"))
    if code == "TransactionCanceledException":
        return TransactionCanceled([(r.get("Code") or "None", r.get("Item")) for r in body.get("CancellationReasons") or []])
    if code in UNAVAILABLE_CODES or status >= 500:
        return RateLimiterUnavailable(f"DynamoDB {operation} failed: {code}: {message}", cause)
    if code == "ResourceNotFoundException":
        return StorageError(
            f"DynamoDB table {table or '?'} not found ({message}); deploy it with `zae-limiter deploy` "
            "or, on an emulator, create it with zae_limiter.local.ensure_table",
            code,
            cause,
        )
    return StorageError(f"DynamoDB refused {operation}: {code}: {message}", code, cause)


def classify(error: BaseException, operation: str, table: str | None = None) -> BaseException:
    """Turn a botocore failure into what flows and callers expect."""
    if isinstance(error, botocore.exceptions.ClientError):
        # The ClientError stays chained to what we raise (and so in logged tracebacks): redact it too.
        error.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in error.args)
        response = error.response
        return classify_response(
            operation,
            response.get("Error", {}).get("Code", ""),
            response.get("Error", {}).get("Message", ""),
            response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0),
            response,
            table,
            error,
        )
    if isinstance(error, (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError)):
        return StorageError(
            f"no AWS credentials for DynamoDB {operation} ({error}); configure them (environment, profile, "
            "SSO, role) or, for an emulator, pass endpoint_url",
            "NoCredentials",
            error,
        )
    if isinstance(error, UNANSWERED_EXCEPTIONS) and operation not in IDEMPOTENT_OPERATIONS:
        return RateLimiterUnavailable(
            f"DynamoDB {operation}: no answer ({error}); it may or may not have been applied, so it is not sent again",
            error,
        )
    if isinstance(error, UNAVAILABLE_EXCEPTIONS):
        return RateLimiterUnavailable(f"DynamoDB {operation} unreachable: {error}", error)
    return error


# The request left and no answer came: DynamoDB may have applied it.
UNANSWERED_EXCEPTIONS = (botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectionClosedError)
# Safe to send twice: reads, transactions (ClientRequestToken), and writes that set rather than add.
IDEMPOTENT_OPERATIONS = frozenset({"GetItem", "BatchGetItem", "Query", "TransactWriteItems", "DeleteItem", "BatchWriteItem"})


def _never_resend_unanswered(caught_exception: BaseException | None = None, **_: Any) -> None:
    """botocore's `needs-retry` hook for UpdateItem: a write whose answer never came is not sent again
    (botocore's standard retries would), because an adjust or a refund sent twice is applied twice. The
    data plane follows the same rule; this is for the boto3 path (lean_hot_path=False, proxies)."""
    if isinstance(caught_exception, UNANSWERED_EXCEPTIONS):
        raise caught_exception


class Boto3Transport:
    """Runs calls: the hot operations on the lean data plane when there is one, the rest on a boto3
    low-level DynamoDB client (thread-safe, so one serves every thread)."""

    def __init__(
        self, client: Any, table: str | None = None, stats: RequestStats | None = None, dataplane: DataPlane | None = None
    ) -> None:
        self.client = client
        self.table = table
        self.stats = stats or RequestStats()
        self.dataplane = dataplane
        self._methods: dict[str, Any] = {}
        events = getattr(getattr(client, "meta", None), "events", None)
        if events is not None:
            events.register_first("needs-retry.dynamodb.UpdateItem", _never_resend_unanswered,
                                  unique_id="zae-limiter-never-resend-unanswered")
        #: Called with every Call before it is sent, on either path (tests, audits, tracing).
        self.observers: list[Callable[[Call], None]] = []

    def call(self, call: Call) -> dict[str, Any]:
        operation = call.operation
        if self.observers:
            for observe in self.observers:
                observe(call)
        if self.dataplane is not None and operation in DATAPLANE_OPERATIONS:
            return self.dataplane.call(call, self.table)
        method = self._methods.get(operation)
        if method is None:
            method = self._methods[operation] = getattr(self.client, xform_name(operation))
        stats = self.stats
        stats.count(operation)
        try:
            if stats.track_capacity:
                response = method(**call.request, ReturnConsumedCapacity="TOTAL")
                stats.add_capacity(operation, response.get("ConsumedCapacity"))
                return response
            return method(**call.request)
        except Exception as error:
            classified = classify(error, call.operation, self.table)
            if classified is error:
                raise
            raise classified from error

    def close(self) -> None:
        if self.dataplane is not None:
            self.dataplane.close()
        self.client.close()


def run_sync(flow: Generator, transport: Boto3Transport) -> Any:
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            instruction = flow.throw(error) if error is not None else flow.send(send)
        except StopIteration as stop:
            return stop.value
        send, error = None, None
        if isinstance(instruction, Call):
            try:
                send = transport.call(instruction)
            except Exception as exc:
                error = exc
        elif isinstance(instruction, Parallel):
            results: list[Any] = []
            for call in instruction.calls:
                try:
                    results.append(transport.call(call))
                except Exception as exc:
                    results.append(exc)
            send = results
        elif isinstance(instruction, Sleep):
            time.sleep(instruction.seconds)
        elif isinstance(instruction, Await):
            instruction.gate.wait(instruction.timeout)
        else:  # pragma: no cover - a flow bug
            raise TypeError(f"unknown instruction {instruction!r}")


class AsyncTransport:
    """The hot operations on the data plane's asyncio connections; boto3's calls on a thread pool, so
    the event loop never waits on a socket."""

    def __init__(self, transport: Boto3Transport, max_workers: int = 64) -> None:
        self.transport = transport
        self.executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="zae-limiter")

    async def call(self, call: Call) -> dict[str, Any]:
        sync = self.transport
        if sync.dataplane is not None and call.operation in DATAPLANE_OPERATIONS:
            for observe in sync.observers:
                observe(call)
            return await sync.dataplane.call_async(call, sync.table)
        return await asyncio.get_running_loop().run_in_executor(self.executor, sync.call, call)

    def close(self) -> None:
        self.executor.shutdown(wait=False)
        self.transport.close()


async def run_async(flow: Generator, transport: AsyncTransport) -> Any:
    send: Any = None
    error: BaseException | None = None
    suspended = False
    while True:
        try:
            instruction = flow.throw(error) if error is not None else flow.send(send)
        except StopIteration as stop:
            if not suspended:
                await asyncio.sleep(0)
            return stop.value
        except BaseException:
            if not suspended:
                # A flow decided without I/O (a local rejection): still give the loop a turn, or a
                # caller retrying in a tight loop would starve every other task, this limiter's own
                # requests in flight included.
                await asyncio.sleep(0)
            raise
        send, error = None, None
        suspended = True
        if isinstance(instruction, Call):
            try:
                send = await transport.call(instruction)
            except Exception as exc:
                error = exc
        elif isinstance(instruction, Parallel):
            send = list(
                await asyncio.gather(*(transport.call(c) for c in instruction.calls), return_exceptions=True)
            )
        elif isinstance(instruction, Sleep):
            await asyncio.sleep(instruction.seconds)
        elif isinstance(instruction, Await):
            await instruction.gate.wait_async(instruction.timeout)
        else:  # pragma: no cover - a flow bug
            raise TypeError(f"unknown instruction {instruction!r}")
