"""Executing flows against DynamoDB: the boto3 transport, error classification, sync and async drivers."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable

import botocore.exceptions
from botocore import xform_name

from ..core import answers
from ..core.answers import AnswerLost, classify_response, is_idempotent, outcome_unknown, redact
from ..core.calls import Call
from ..core.errors import RateLimiterUnavailable, StorageError
from . import connections
from .connections import MAX_IDLE_SECONDS
from . import deferral
from .dataplane import OPERATIONS as DATAPLANE_OPERATIONS
from .dataplane import DataPlane
from ..stats import RequestStats

__all__ = ["Boto3Transport", "AsyncTransport", "classify", "classify_response", "redact", "run_async", "run_sync"]

# Failures before a byte of the request left (the connection could not be made): botocore may retry
# any request after them. After every other failure the request may have arrived.
NOTHING_SENT = (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError)
UNAVAILABLE_EXCEPTIONS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.HTTPClientError,  # ResponseStreamingError among them
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ChecksumError,
)


def classify(error: BaseException, call: Call | str, table: str | None = None) -> BaseException:
    """Turn a botocore failure into what flows and callers expect."""
    operation = call.operation if isinstance(call, Call) else call
    idempotent = is_idempotent(operation, call.request) if isinstance(call, Call) else False
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
    unanswered = isinstance(error, AnswerLost) or (
        isinstance(error, UNAVAILABLE_EXCEPTIONS) and not isinstance(error, NOTHING_SENT)
    )
    if unanswered and not idempotent:
        return outcome_unknown(operation, error)
    if isinstance(error, AnswerLost):
        return RateLimiterUnavailable(f"DynamoDB {operation}: no whole answer: {error}", error)
    if isinstance(error, UNAVAILABLE_EXCEPTIONS):
        return RateLimiterUnavailable(f"DynamoDB {operation} unreachable: {redact(str(error))}", error)
    return error


def _request_of(request_dict: Any) -> dict[str, Any]:
    body = (request_dict or {}).get("body") or b"{}"
    try:
        decoded = json.loads(body)
    except (TypeError, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


class NeverResend:
    """botocore's `needs-retry` hook for every DynamoDB operation of the limiter's client: the rules of
    answers.py on the boto3 path (lean_hot_path=False, proxies, and every operation the data plane does
    not carry). botocore's own retries would send a write again after a read timeout, a connection lost
    after sending, an answer cut short (ResponseStreamingError, IncompleteReadError, ...) or one whose
    x-amz-crc32 does not match, and take a truncated success for an empty one. Here:
    - a failure after the request may have arrived ends a non-idempotent write at once (raised as is;
      `classify` makes it WriteOutcomeUnknown); other requests are left to botocore's retries;
    - an answer that is not whole (short of its Content-Length, a CRC mismatch, a success that is not
      JSON, a gateway's 502/504) is AnswerLost for a non-idempotent write, and retried within the
      attempt budget for the rest."""

    def __init__(self, max_attempts: int) -> None:
        self.max_attempts = max_attempts

    def __call__(self, response: Any = None, caught_exception: BaseException | None = None, operation: Any = None,
                 request_dict: Any = None, attempts: int = 1, **_: Any) -> float | None:
        name = getattr(operation, "name", "")
        if caught_exception is not None:
            if isinstance(caught_exception, NOTHING_SENT) or is_idempotent(name, _request_of(request_dict)):
                return None  # botocore decides, as for any request
            raise caught_exception
        if response is None:
            return None
        http = response[0]
        problem = self._defect(http)
        if problem is None:
            return None
        if not is_idempotent(name, _request_of(request_dict)):
            raise AnswerLost(problem)
        if attempts < self.max_attempts:
            return answers.backoff_seconds(attempts)
        raise AnswerLost(f"{problem} ({attempts} attempts)")

    @staticmethod
    def _defect(http: Any) -> str | None:
        headers = http.headers
        try:
            answer = answers.decode_answer(http.status_code, http.content or b"", headers.get("content-length"),
                                           headers.get("x-amz-crc32"))
        except AnswerLost as lost:
            return str(lost)
        if answers.passed_on_by_a_gateway(http.status_code, answer):
            return f"HTTP {http.status_code} from something in front of DynamoDB"
        return None


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
        meta = getattr(client, "meta", None)
        if meta is not None:
            meta.events.register_first("needs-retry.dynamodb", NeverResend(answers.attempt_budget(meta.config.retries)),
                                       unique_id="zae-limiter-never-resend")
        #: Called with every Call before it is sent, on either path (tests, audits, tracing).
        self.observers: list[Callable[[Call], None]] = []
        self._last_answer: float | None = None  # monotonic: when boto3 last answered (or failed)
        self._in_flight = 0  # boto3 requests under way, which a close of the pool would break
        self._idle_lock = threading.Lock()

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
        self._begin_request()
        try:
            if stats.track_capacity:
                response = method(**call.request, ReturnConsumedCapacity="TOTAL")
                stats.add_capacity(operation, response.get("ConsumedCapacity"))
                return response
            return method(**call.request)
        except Exception as error:
            classified = classify(error, call, self.table)
            if classified is error:
                raise
            raise classified from error
        finally:
            with self._idle_lock:
                self._in_flight -= 1
                self._last_answer = connections.monotonic()

    def _begin_request(self) -> None:
        with self._idle_lock:  # held for microseconds, and for the close of an idle pool
            if self._in_flight == 0:
                self._retire_idle_connections()
            self._in_flight += 1

    def _retire_idle_connections(self) -> None:
        """boto3's pool (urllib3) has no idle limit: a server closes a connection idle for its keep-alive
        as the next request goes out on it, and a write sent there is of unknown outcome though nothing
        was applied. After MAX_IDLE_SECONDS without an answer (below every keep-alive: connections.py)
        the client's pooled connections are closed with its public `close()`, and it opens new ones, as
        the data plane retires its own. Only with no request under way: closing urllib3's pool under one
        that holds it fails that request (ClosedPoolError) before a byte is sent, as an unknown outcome.
        A pool is idle from its last answer: a connection that concurrency left at the back of the pool
        while its others kept busy is not covered (urllib3 checks each for a close the server has
        already sent, so only a close in flight at that moment is missed)."""
        last = self._last_answer
        if last is not None and connections.monotonic() - last >= MAX_IDLE_SECONDS:
            self.client.close()

    def call_async_lean(self, call: Call) -> Awaitable[dict[str, Any]] | None:
        """The call on the data plane's asyncio connections (observed, as `call` observes), when that is
        where it goes; None when it goes through boto3."""
        if self.dataplane is None or call.operation not in DATAPLANE_OPERATIONS:
            return None
        for observe in self.observers:
            observe(call)
        return self.dataplane.call_async(call, self.table)

    def close(self) -> None:
        if self.dataplane is not None:
            self.dataplane.close()
        self.client.close()


class AsyncTransport:
    """The hot operations on the data plane's asyncio connections; boto3's calls on a thread pool, so
    the event loop never waits on a socket."""

    def __init__(self, transport: Boto3Transport, max_workers: int = 64) -> None:
        self.transport = transport
        self.executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="zae-limiter")

    async def call(self, call: Call) -> dict[str, Any]:
        lean = self.transport.call_async_lean(call)
        if lean is not None:
            return await lean
        future = asyncio.get_running_loop().run_in_executor(self.executor, self.transport.call, call)
        # Under a deferral the call, which goes on in its thread whatever the task does, is awaited to its end.
        return await (deferral.outlast(future) if deferral.active() else future)

    def close(self) -> None:
        self.executor.shutdown(wait=False)
        self.transport.close()
