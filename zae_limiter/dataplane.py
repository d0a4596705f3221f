"""The hot path's own DynamoDB client: the JSON protocol, signed, on keep-alive connections.

boto3 spends ~1.5 ms of client CPU on one UpdateItem (request validation, serialisation through the
service model, an event system, a general-purpose signer, urllib3). The limiter's hot requests are
already in DynamoDB's wire format (flows build them so), so this client only has to serialise them with
`json`, sign them (`sigv4.Signer`), and send them on a persistent connection: one socket per thread for
the sync API, a pool of asyncio streams per event loop for the async API (no thread hop). Both drivers make
the same decisions (`_outcome` for the answer, `response_framing` for the HTTP/1.1 response head): only
the exchange differs. The standard library's `http.client` was half of a warm acquire's client CPU (its
header handling goes through the `email` package); one request shape needs none of that.

What a boto3 user expects is kept by borrowing it from the boto3 client the limiter also holds: the
endpoint (endpoint_url, AWS_ENDPOINT_URL*, profile settings), the region, the credential chain (env,
profiles, SSO, assume-role, IMDS, refreshed as they expire), the timeouts and the retry budget of its
botocore Config. With a proxy configured, `for_client` returns None and boto3 carries every request.

Retries: throttling, 5xx answers and failures to connect are retried with full-jitter exponential
backoff within the attempt budget. An UpdateItem whose answer never came (read timeout, a connection
lost after sending) is NOT retried: DynamoDB may have applied it, and a second conditional write could
charge the caller twice. It fails as RateLimiterUnavailable instead. Transactions carry a
ClientRequestToken, which makes their retries idempotent.
"""

from __future__ import annotations

import asyncio
import json
import random
import select
import socket
import ssl
import threading
import time
import urllib.request
import weakref
from typing import Any
from urllib.parse import urlsplit

from .calls import Call
from .errors import RateLimiterUnavailable, StorageError
from .sigv4 import Signer
from .stats import RequestStats

TARGET_PREFIX = "DynamoDB_20120810."
# The operations the hot path sends; everything else stays on boto3.
OPERATIONS = frozenset({"UpdateItem", "TransactWriteItems", "GetItem", "BatchGetItem"})
# Safe to send twice: reads, and transactions (ClientRequestToken).
IDEMPOTENT = frozenset({"GetItem", "BatchGetItem", "TransactWriteItems"})
RETRYABLE_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded", "InternalServerError",
     "ServiceUnavailable", "ServiceUnavailableException", "InternalFailure", "TransactionInProgressException"}
)
BACKOFF_BASE = 0.025
BACKOFF_CAP = 1.0
MAX_LINE = 65536  # longest status or header line accepted


def response_framing(status_line: bytes, header_lines: list[bytes]) -> tuple[int, int | None, bool, bool]:
    """(status, body length or None, chunked, close after it) of an HTTP/1.1 response head: the decision
    both exchanges share. ValueError when the head is not HTTP."""
    version, _, rest = status_line.partition(b" ")
    if not version.startswith(b"HTTP/"):
        raise ValueError(f"not an HTTP response: {status_line[:80]!r}")
    status = int(rest[:3])
    length: int | None = None
    chunked = False
    close = version == b"HTTP/1.0"  # 1.0 closes unless it says keep-alive; 1.1 keeps unless it says close
    for line in header_lines:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            close = value != b"keep-alive" if version == b"HTTP/1.0" else value == b"close"
    if status in (204, 304) or 100 <= status < 200:  # never a body, whatever the headers say
        return status, 0, False, close
    return status, length, chunked, close


class _Connection:
    """One kept-alive socket of a thread, and its buffered reader."""

    __slots__ = ("sock", "reader", "__weakref__")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class _Ambiguous(Exception):
    """The request may have reached DynamoDB, and no answer came back."""


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
    ) -> None:
        parts = urlsplit(endpoint_url)
        self.https = parts.scheme == "https"
        self.hostname = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        default_port = 443 if self.https else 80
        self.host_header = self.hostname if self.port == default_port else f"{self.hostname}:{self.port}"
        self.credentials = credentials
        self.signer = Signer(region)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max(1, max_attempts)
        self.ssl_context = ssl_context
        self.stats = stats or RequestStats()
        self._local = threading.local()
        # Weak: a thread's connection goes (and its socket closes) when the thread ends.
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._lock = threading.Lock()
        # Idle asyncio connections per event loop. Pooled writers reference their loop, so a weak key
        # would never be released: pools of closed loops are purged (and their sockets closed) instead.
        self._async_pools: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        self.max_idle = max_idle

    @classmethod
    def for_client(cls, client: Any, credentials: Any, stats: RequestStats | None = None) -> "DataPlane | None":
        """A data plane with the boto3 client's endpoint, region, timeouts and retry budget; None where
        boto3 must carry the requests itself (a proxy, an endpoint with a path, no credentials)."""
        endpoint = client.meta.endpoint_url
        parts = urlsplit(endpoint)
        config = client.meta.config
        if credentials is None or parts.path not in ("", "/") or parts.query or config.proxies:
            return None
        if parts.scheme not in ("http", "https") or _proxied(parts.scheme, parts.hostname or ""):
            return None
        context = None
        if parts.scheme == "https":
            from botocore.httpsession import get_cert_path

            verify = getattr(client._endpoint.http_session, "_verify", True)
            if verify is False:
                context = ssl._create_unverified_context()
            else:
                context = ssl.create_default_context(cafile=get_cert_path(verify))
        retries = config.retries or {}
        return cls(
            endpoint,
            client.meta.region_name,
            credentials,
            connect_timeout=float(config.connect_timeout),
            read_timeout=float(config.read_timeout),
            max_attempts=int(retries.get("total_max_attempts", retries.get("max_attempts", 2) + 1)),
            ssl_context=context,
            stats=stats,
            max_idle=int(config.max_pool_connections or 10),
        )

    # -- connections ----------------------------------------------------------------------------
    def _connect(self) -> _Connection:
        """A new connection for this thread. OSError (ssl errors included) when it cannot be made:
        nothing was sent."""
        sock = socket.create_connection((self.hostname, self.port), timeout=self.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.https:
                context = self.ssl_context or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=self.hostname)  # the handshake, in the connect timeout
            sock.settimeout(self.read_timeout)
        except BaseException:
            sock.close()
            raise
        connection = self._local.connection = _Connection(sock)
        with self._lock:
            self._connections.add(connection)
        return connection

    def _drop(self, connection: _Connection) -> None:
        connection.close()
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None

    def _exchange(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """One request and its answer. Connect failures propagate (nothing was sent); _Ambiguous when
        the request was sent and no whole answer came back: it may have been applied. A kept-alive
        connection is checked before reuse (a server that closed it has left an EOF to read), so a
        request that was sent is never sent again by this layer."""
        connection = getattr(self._local, "connection", None)
        if connection is not None and not _still_open(connection.sock):
            self._drop(connection)
            connection = None
        if connection is None:
            connection = self._connect()
        try:
            connection.sock.sendall(self._request_bytes(headers, body))
            reader = connection.reader
            status_line = reader.readline(MAX_LINE)
            if not status_line:
                raise ConnectionResetError("the server closed the connection without answering")
            lines = []
            while (line := reader.readline(MAX_LINE)) not in (b"\r\n", b"\n", b""):
                lines.append(line)
            status, length, chunked, close = response_framing(status_line, lines)
            if chunked:
                data = _read_chunked(reader)
            elif length is None:  # no framing: the body runs to the end of the connection
                data, close = reader.read(), True
            else:
                data = reader.read(length)
                if len(data) != length:
                    raise ConnectionResetError(f"the answer ended after {len(data)} of {length} bytes")
        except (OSError, ValueError) as error:  # timeouts, resets, a cut connection, a garbled answer
            self._drop(connection)
            raise _Ambiguous(str(error) or type(error).__name__) from error
        if close:
            self._drop(connection)
        return status, data

    def close(self) -> None:
        with self._lock:
            connections, self._connections = list(self._connections), weakref.WeakSet()
        for connection in connections:
            connection.close()
        self._local = threading.local()
        pools, self._async_pools = list(self._async_pools.values()), {}
        for pool in pools:
            for _, writer in pool:
                _close_writer(writer)

    # -- async connections (one pool per event loop: asyncio streams belong to their loop) ---------
    async def _open_async(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                self.hostname, self.port, ssl=self.ssl_context if self.https else None,
                server_hostname=self.hostname if self.https else None,
            ),
            self.connect_timeout,
        )
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    def _request_bytes(self, headers: dict[str, str], body: bytes) -> bytes:
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return f"POST / HTTP/1.1\r\n{lines}Content-Length: {len(body)}\r\n\r\n".encode() + body

    async def _read_response(self, reader: asyncio.StreamReader, status_line: bytes) -> tuple[int, bytes, bool]:
        lines = []
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            lines.append(line)
        status, length, chunked, close = response_framing(status_line, lines)
        if chunked:
            parts = []
            while size := int((await reader.readline()).split(b";")[0], 16):
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return status, b"".join(parts), close
        if length is None:  # no framing: the body runs to the end of the connection
            return status, await reader.read(), True
        return status, await reader.readexactly(length), close

    def _pool(self) -> list[Any]:
        loop = asyncio.get_running_loop()
        pool = self._async_pools.get(loop)
        if pool is None:
            for old in [other for other in self._async_pools if other.is_closed()]:
                for _, writer in self._async_pools.pop(old):
                    _close_writer(writer)
            pool = self._async_pools[loop] = []
        return pool

    async def _exchange_async(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        pool = self._pool()
        payload = self._request_bytes(headers, body)
        reader = writer = None
        while pool:  # the newest idle connection the server has not closed
            reader, writer = pool.pop()
            if not reader.at_eof() and not writer.is_closing() and _still_open(writer.get_extra_info("socket")):
                break
            _close_writer(writer)
            reader = writer = None
        if writer is None:
            reader, writer = await self._open_async()  # connect errors propagate: nothing was sent
        keep = False
        try:
            writer.write(payload)
            async with asyncio.timeout(self.read_timeout):
                status_line = await reader.readline()
                if not status_line:
                    raise ConnectionResetError("the server closed the connection without answering")
                status, data, close = await self._read_response(reader, status_line)
            keep = not close
            return status, data
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
            raise _Ambiguous(str(error) or type(error).__name__) from error
        finally:
            if keep and len(pool) < self.max_idle:
                pool.append((reader, writer))
            else:  # also on cancellation: a half-used connection is never reused
                _close_writer(writer)

    # -- calls: the same decisions for both drivers -----------------------------------------------
    def _body(self, call: Call) -> bytes:
        request = call.request
        if self.stats.track_capacity:
            request = {**request, "ReturnConsumedCapacity": "TOTAL"}
        return json.dumps(request, separators=(",", ":")).encode()

    def _headers(self, target: str, body: bytes) -> dict[str, str]:
        frozen = self.credentials.get_frozen_credentials()
        return self.signer.headers(self.host_header, target, body, frozen.access_key, frozen.secret_key, frozen.token)

    def _outcome(self, operation: str, exchanged: tuple[int, bytes] | BaseException, table: str | None) -> dict[str, Any]:
        """The answer, or the exception to raise; `_Retry` when another attempt may succeed."""
        from .transport import classify_response  # one error mapping for both transports

        if isinstance(exchanged, _Ambiguous):
            if operation not in IDEMPOTENT:
                raise RateLimiterUnavailable(
                    f"DynamoDB {operation}: no answer ({exchanged}); it may or may not have been applied, "
                    "so it is not sent again", exchanged,
                ) from exchanged
            raise _Retry(str(exchanged), exchanged)
        if isinstance(exchanged, BaseException):  # could not connect: nothing was sent
            raise _Retry(f"cannot connect to {self.host_header}: {exchanged}", exchanged)
        status, data = exchanged
        try:
            answer = json.loads(data) if data else {}
        except ValueError:  # a proxy's or gateway's page, not DynamoDB's JSON
            if status >= 500:
                raise _Retry(f"HTTP {status} with a non-JSON answer",
                             RateLimiterUnavailable(f"DynamoDB {operation}: HTTP {status}, not JSON")) from None
            raise StorageError(f"DynamoDB {operation}: HTTP {status} with an answer that is not JSON: {data[:200]!r}",
                               f"HTTP{status}") from None
        if status == 200:
            if self.stats.track_capacity:
                self.stats.add_capacity(operation, answer.get("ConsumedCapacity"))
            return answer
        code = str(answer.get("__type", "")).rpartition("#")[2]
        message = answer.get("message") or answer.get("Message") or ""
        if code in RETRYABLE_CODES or status >= 500:
            raise _Retry(f"{code or status}: {message}", classify_response(operation, code, message, status, answer, table))
        raise classify_response(operation, code, message, status, answer, table)

    def _give_up(self, operation: str, last: "_Retry | None") -> RateLimiterUnavailable:
        return RateLimiterUnavailable(
            f"DynamoDB {operation} failed after {self.max_attempts} attempts: {last}", last.cause if last else None
        )

    @staticmethod
    def _backoff(attempt: int) -> float:
        return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))

    def call(self, call: Call, table: str | None = None) -> dict[str, Any]:
        operation, body = call.operation, self._body(call)
        target = TARGET_PREFIX + operation
        last: _Retry | None = None
        for attempt in range(self.max_attempts):
            if attempt:
                time.sleep(self._backoff(attempt))
            self.stats.count(operation)
            exchanged: tuple[int, bytes] | BaseException
            try:
                exchanged = self._exchange(self._headers(target, body), body)
            except (_Ambiguous, OSError) as error:
                exchanged = error
            try:
                return self._outcome(operation, exchanged, table)
            except _Retry as retry:
                last = retry
        raise self._give_up(operation, last)

    async def call_async(self, call: Call, table: str | None = None) -> dict[str, Any]:
        operation, body = call.operation, self._body(call)
        target = TARGET_PREFIX + operation
        last: _Retry | None = None
        for attempt in range(self.max_attempts):
            if attempt:
                await asyncio.sleep(self._backoff(attempt))
            self.stats.count(operation)
            exchanged: tuple[int, bytes] | BaseException
            refresh_needed = getattr(self.credentials, "refresh_needed", None)
            if refresh_needed is not None and refresh_needed():
                # Refreshing (assume-role, SSO, instance metadata) is network I/O: off the event loop.
                await asyncio.to_thread(self.credentials.get_frozen_credentials)
            try:
                exchanged = await self._exchange_async(self._headers(target, body), body)
            except (_Ambiguous, OSError, TimeoutError) as error:
                exchanged = error
            try:
                return self._outcome(operation, exchanged, table)
            except _Retry as retry:
                last = retry
        raise self._give_up(operation, last)


def _still_open(sock: Any) -> bool:
    """Whether an idle kept-alive socket is still usable: nothing to read on it (a closed connection
    reads as EOF at once; stray bytes would corrupt the next answer)."""
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _read_chunked(reader: Any) -> bytes:
    parts = []
    while size := int(reader.readline(MAX_LINE).split(b";")[0], 16):
        chunk = reader.read(size)
        if len(chunk) != size:
            raise ConnectionResetError(f"a chunk ended after {len(chunk)} of {size} bytes")
        parts.append(chunk)
        reader.read(2)
    while reader.readline(MAX_LINE) not in (b"\r\n", b"\n", b""):  # trailers
        pass
    return b"".join(parts)


def _close_writer(writer: Any) -> None:
    try:
        writer.close()
    except RuntimeError:  # its event loop is closed: close the socket itself
        sock = getattr(writer.transport, "_sock", None)
        if sock is not None:
            sock.close()


class _Retry(Exception):
    """Another attempt may succeed; the message says why this one did not, `cause` what it was."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


def _proxied(scheme: str, host: str) -> bool:
    proxies = urllib.request.getproxies()
    return bool(proxies.get(scheme)) and not urllib.request.proxy_bypass(host)
