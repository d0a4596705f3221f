"""The hot path's own DynamoDB client: the JSON protocol, signed, on keep-alive connections.

boto3 spends ~1.5 ms of client CPU on one UpdateItem (request validation, serialisation through the
service model, an event system, a general-purpose signer, urllib3). The limiter's hot requests are
already in DynamoDB's wire format (flows build them so), so this client only has to serialise them with
`json`, sign them (`sigv4.Signer`), and send them on one persistent `http.client` connection per thread.

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

import http.client
import json
import random
import socket
import ssl
import threading
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from .calls import Call
from .errors import RateLimiterUnavailable
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
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

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
        )

    # -- connections ----------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            if self.https:
                connection = http.client.HTTPSConnection(self.hostname, self.port, timeout=self.connect_timeout, context=self.ssl_context)
            else:
                connection = http.client.HTTPConnection(self.hostname, self.port, timeout=self.connect_timeout)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _open(self, connection: http.client.HTTPConnection) -> None:
        connection.timeout = self.connect_timeout
        connection.connect()
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.sock.settimeout(self.read_timeout)

    def _exchange(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """One request and its answer. Raises ConnectionError-family errors when it never left, and
        _Ambiguous when it may have been applied without an answer."""
        connection = self._connection()
        reused = connection.sock is not None
        if not reused:
            self._open(connection)  # connect errors and timeouts propagate: nothing was sent
        try:
            connection.request("POST", "/", body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
            connection.close()
            if reused:
                # The server closed an idle keep-alive connection before reading this request.
                self._open(connection)
                try:
                    connection.request("POST", "/", body=body, headers=headers)
                    response = connection.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException) as again:
                    connection.close()
                    raise _Ambiguous(str(again)) from again
            else:
                raise _Ambiguous(str(error)) from error
        except (OSError, http.client.HTTPException) as error:  # read timeouts among them
            connection.close()
            raise _Ambiguous(str(error)) from error
        if response.will_close:
            connection.close()
        return response.status, data

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()

    # -- calls ----------------------------------------------------------------------------------
    def call(self, call: Call, table: str | None = None) -> dict[str, Any]:
        from .transport import classify_response  # one error mapping for both transports

        operation = call.operation
        request = call.request
        stats = self.stats
        if stats.track_capacity:
            request = {**request, "ReturnConsumedCapacity": "TOTAL"}
        body = json.dumps(request, separators=(",", ":")).encode()
        target = TARGET_PREFIX + operation
        last = ""
        for attempt in range(self.max_attempts):
            if attempt:
                time.sleep(random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)))
            stats.count(operation)
            frozen = self.credentials.get_frozen_credentials()
            headers = self.signer.headers(self.host_header, target, body, frozen.access_key, frozen.secret_key, frozen.token)
            try:
                status, data = self._exchange(headers, body)
            except _Ambiguous as error:
                if operation not in IDEMPOTENT:
                    raise RateLimiterUnavailable(
                        f"DynamoDB {operation}: no answer ({error}); it may or may not have been applied, "
                        "so it is not sent again", error,
                    ) from error
                last = str(error)
                continue
            except (OSError, http.client.HTTPException) as error:  # could not connect: nothing was sent
                last = f"cannot connect to {self.host_header}: {error}"
                continue
            answer = json.loads(data) if data else {}
            if status == 200:
                if stats.track_capacity:
                    stats.add_capacity(operation, answer.get("ConsumedCapacity"))
                return answer
            code = str(answer.get("__type", "")).rpartition("#")[2]
            message = answer.get("message") or answer.get("Message") or ""
            if code in RETRYABLE_CODES or status >= 500:
                last = f"{code or status}: {message}"
                continue
            raise classify_response(operation, code, message, status, answer, table)
        raise RateLimiterUnavailable(f"DynamoDB {operation} failed after {self.max_attempts} attempts: {last}")


def _proxied(scheme: str, host: str) -> bool:
    proxies = urllib.request.getproxies()
    return bool(proxies.get(scheme)) and not urllib.request.proxy_bypass(host)
