"""The hot path's own DynamoDB client: the JSON protocol, signed, on keep-alive connections.

boto3 spends ~1.5 ms of client CPU on one UpdateItem (request validation, serialisation through the
service model, an event system, a general-purpose signer, urllib3). The limiter's hot requests are
already in DynamoDB's wire format (flows build them so), so this client only has to serialise them with
`json`, sign them (`sigv4.Signer`), and exchange them on a kept-alive connection (`connections.py`:
one socket per thread for the sync API, pools of asyncio connections per event loop for the async API,
no thread hop), framed by httptools (`http11.py`). Both drivers make the same decisions (`_outcome`, on the
rules of `answers.py` that the boto3 path also follows): only the exchange differs.

What a boto3 user expects is borrowed from the boto3 client the limiter also holds: where the request
goes, its signing scope and User-Agent (botocore prepares one request of each operation and it is stopped
before sending: `endpoints.py`), the credential chain (env, profiles, SSO, assume-role, IMDS, refreshed
as they expire; never refreshed on the event loop), the TLS trust, and the timeouts and retry budget of
its botocore Config. Where the lean path cannot honour a setting, `for_client` returns None and boto3
carries every request.

Retries: throttling, 5xx answers and requests that never left (a failed connect, a kept-alive connection
found closed) are retried with full-jitter exponential backoff within the attempt budget. A write that
may have arrived and got no whole answer (a read timeout, a connection lost after sending, an answer cut
short, garbled or failing its x-amz-crc32) is sent again only if `answers.is_idempotent` says a second
send is harmless (a transaction's ClientRequestToken); otherwise it fails as `WriteOutcomeUnknown`, a
RateLimiterUnavailable: DynamoDB may have applied it, and a second conditional write or ADD would count
twice.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from . import endpoints
from ..core.answers import (
    AnswerLost,
    attempt_budget,
    backoff_seconds,
    classify_response,
    decode_answer,
    error_code,
    is_idempotent,
    is_retryable,
    outcome_unknown,
    passed_on_by_a_gateway,
)
from ..core.calls import Call
from .connections import Ambiguous, AsyncPools, Endpoint, NotSent, SyncConnections
from ..core.errors import RateLimiterUnavailable, StorageError
from .http11 import Answer
from .sigv4 import Signer
from ..stats import RequestStats

TARGET_PREFIX = "DynamoDB_20120810."
OPERATIONS = frozenset(endpoints.OPERATIONS)
# How long the async driver signs with credentials it read off the event loop before reading them again
# (also off the loop). Refreshable credentials are refreshed well before they expire (botocore's
# advisory window is 15 minutes, its mandatory one 10), so a copy this young is always still valid; it
# is read again at once when botocore says a refresh is due.
CREDENTIALS_COPY_SECONDS = 30.0
# One encoder, made once: json.dumps with any argument builds a new JSONEncoder on every call.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


class _Retry(Exception):
    """Another attempt may succeed; the message says why this one did not, `cause` what it was."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class DataPlane:
    def __init__(
        self,
        endpoint_url: str,
        region: str,
        credentials: Any,
        *,
        connect_timeout: float = 1.0,
        read_timeout: float = 2.0,
        max_attempts: int = 3,
        ssl_context: ssl.SSLContext | None = None,
        stats: RequestStats | None = None,
        max_idle: int = 64,
        service: str = "dynamodb",
        user_agents: dict[str, str] | None = None,
        tcp_keepalive: bool = False,
    ) -> None:
        parts = urlsplit(endpoint_url)
        self.https = parts.scheme == "https"
        self.hostname = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.host_header = endpoints.host_header(endpoint_url)
        self.credentials = credentials
        self.signer = Signer(region, service)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max(1, max_attempts)
        self.stats = stats or RequestStats()
        self.user_agents = user_agents or {}
        self.endpoint = Endpoint(
            self.hostname, self.port, (ssl_context or ssl.create_default_context()) if self.https else None,
            connect_timeout, read_timeout, tcp_keepalive,
        )
        self._sync = SyncConnections(self.endpoint)
        self._async = AsyncPools(self.endpoint, max_idle)
        self._credentials_copy: tuple[Any, float] | None = None

    @classmethod
    def for_client(
        cls, client: Any, credentials: Any, stats: RequestStats | None = None, *, table: str = "zae-limiter",
        verify: bool | str = True,
    ) -> "DataPlane | None":
        """A data plane that sends where the boto3 client would, with its timeouts and retry budget;
        None where boto3 must carry the requests itself."""
        route = endpoints.route_for(client, credentials, table, verify)
        if route is None:
            return None
        config = client.meta.config
        return cls(
            route.url,
            route.region,
            credentials,
            connect_timeout=float(config.connect_timeout),
            read_timeout=float(config.read_timeout),
            max_attempts=attempt_budget(config.retries),
            ssl_context=route.ssl_context,
            stats=stats,
            max_idle=int(config.max_pool_connections or 10),
            service=route.service,
            user_agents=route.user_agents,
            tcp_keepalive=route.tcp_keepalive,
        )

    def close(self) -> None:
        self._sync.close()
        self._async.close()

    # -- credentials ------------------------------------------------------------------------------
    def _credentials_at_hand(self) -> Any:
        """The credentials to sign with, when reading them is no I/O: static ones, or a young copy of
        refreshable ones that botocore does not yet want refreshed. None otherwise."""
        credentials = self.credentials
        refresh_needed = getattr(credentials, "refresh_needed", None)
        if refresh_needed is None:  # static credentials
            return credentials.get_frozen_credentials()
        copy = self._credentials_copy
        if copy is None or refresh_needed() or time.monotonic() - copy[1] > CREDENTIALS_COPY_SECONDS:
            return None
        return copy[0]

    async def _refreshed_credentials(self) -> Any:
        """Never refreshed on the event loop: refreshing (assume-role, SSO, instance metadata) is network
        I/O, so it runs in a thread, and the loop signs with the copy it returns."""
        frozen = await asyncio.to_thread(self.credentials.get_frozen_credentials)
        self._credentials_copy = (frozen, time.monotonic())
        return frozen

    # -- requests: the same decisions for both drivers -----------------------------------------------
    def _body(self, call: Call) -> bytes:
        request = call.request
        if self.stats.track_capacity:
            request = {**request, "ReturnConsumedCapacity": "TOTAL"}
        return _ENCODE(request).encode()

    def _headers(self, operation: str, body: bytes, frozen: Any) -> list[tuple[str, str]]:
        signed = self.signer.headers(
            self.host_header, TARGET_PREFIX + operation, body, frozen.access_key, frozen.secret_key, frozen.token
        )
        headers = list(signed.items())
        agent = self.user_agents.get(operation)
        if agent:
            headers.append(("User-Agent", agent))
        headers.append(("Content-Length", str(len(body))))
        return headers

    def _outcome(self, call: Call, exchanged: Answer | BaseException, table: str | None) -> dict[str, Any]:
        """The answer, or the exception to raise; `_Retry` when another attempt may succeed."""
        operation = call.operation
        if isinstance(exchanged, NotSent):  # nothing left: safe to send on a new connection
            raise _Retry(str(exchanged), exchanged.__cause__ or exchanged)
        if isinstance(exchanged, BaseException):  # Ambiguous: it may have arrived
            return self._unanswered(call, exchanged)
        status, data, _, crc32 = exchanged
        try:
            answer = decode_answer(status, data, None, crc32)  # the parser has held the body to its framing
        except AnswerLost as lost:
            return self._unanswered(call, lost)
        if answer is None:  # not DynamoDB's JSON: a proxy's or gateway's page
            if passed_on_by_a_gateway(status, answer):
                return self._unanswered(call, AnswerLost(f"HTTP {status} from something in front of DynamoDB"))
            if status >= 500:
                raise _Retry(f"HTTP {status} with a non-JSON answer",
                             RateLimiterUnavailable(f"DynamoDB {operation}: HTTP {status}, not JSON"))
            raise StorageError(f"DynamoDB {operation}: HTTP {status} with an answer that is not JSON: {data[:200]!r}",
                               f"HTTP{status}")
        if status == 200:
            if self.stats.track_capacity:
                self.stats.add_capacity(operation, answer.get("ConsumedCapacity"))
            return answer
        code, message = error_code(answer)
        error = classify_response(operation, code, message, status, answer, table)
        if is_retryable(code, status):
            raise _Retry(f"{code or status}: {message}", error)
        raise error

    @staticmethod
    def _unanswered(call: Call, why: BaseException) -> dict[str, Any]:
        if not is_idempotent(call.operation, call.request):
            raise outcome_unknown(call.operation, why) from why
        raise _Retry(str(why), why)

    def _give_up(self, operation: str, last: "_Retry | None") -> RateLimiterUnavailable:
        return RateLimiterUnavailable(
            f"DynamoDB {operation} failed after {self.max_attempts} attempts: {last}", last.cause if last else None
        )

    def call(self, call: Call, table: str | None = None) -> dict[str, Any]:
        operation, body = call.operation, self._body(call)
        last: _Retry | None = None
        for attempt in range(self.max_attempts):
            if attempt:
                time.sleep(backoff_seconds(attempt))
            self.stats.count(operation)
            exchanged: Answer | BaseException
            try:
                headers = self._headers(operation, body, self.credentials.get_frozen_credentials())
                exchanged = self._sync.exchange(headers, body)
            except (NotSent, Ambiguous) as error:
                exchanged = error
            try:
                return self._outcome(call, exchanged, table)
            except _Retry as retry:
                last = retry
        raise self._give_up(operation, last)

    async def call_async(self, call: Call, table: str | None = None) -> dict[str, Any]:
        operation, body = call.operation, self._body(call)
        last: _Retry | None = None
        for attempt in range(self.max_attempts):
            if attempt:
                await asyncio.sleep(backoff_seconds(attempt))
            self.stats.count(operation)
            exchanged: Answer | BaseException
            try:
                frozen = self._credentials_at_hand() or await self._refreshed_credentials()
                headers = self._headers(operation, body, frozen)
                exchanged = await self._async.exchange(headers, body)
            except (NotSent, Ambiguous) as error:
                exchanged = error
            try:
                return self._outcome(call, exchanged, table)
            except _Retry as retry:
                last = retry
        raise self._give_up(operation, last)
