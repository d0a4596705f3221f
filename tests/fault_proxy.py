"""A fault-injecting HTTP proxy on 127.0.0.1 in front of the embedded DynamoDB.

The limiter under test talks to the proxy; the proxy forwards to the real (moto) server, so after a fault
the bucket's state can be read back from the server itself. Each request is matched, by operation
(X-Amz-Target) and optionally by its JSON body, against the rules added with `fail(...)`; the first rule
with uses left decides what happens to it:

  "throttle"    answer ThrottlingException (400) without forwarding: not applied, retryable
  "error"       answer `code` with `status` without forwarding (AccessDeniedException, 5xx, ...)
  "html503"     answer 503 with an HTML body, as a load balancer does: not applied
  "drop"        close the connection before forwarding: not applied, and the client gets no answer
  "lost"        forward, then close without answering: applied, the answer is lost (an ambiguous write)
  "stall"       forward, then hold the answer until the client has given up (a read timeout): applied
  "hang"        hold the request until the client has given up, never forward it: not applied
  "respond"     answer `status` with `payload` (a dict) without forwarding
  "badsig"      answer InvalidSignatureException echoing the request's signed headers, session token
                and signature included, as AWS does

`down()` stops listening and cuts open connections (the server is gone: connects are refused); `up()`
listens on the same port again. Works for the sync and the async data plane alike: it is just a socket.
"""

from __future__ import annotations

import http.client
import http.server
import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
# How long "stall" and "hang" hold a request at most; `close()` releases them at once. Longer than any
# read timeout the tests configure.
HOLD_SECONDS = 10.0


@dataclass
class Rule:
    operation: str | None  # None: any operation
    action: str
    times: int | None = None  # None: every matching request
    when: Callable[[dict[str, Any]], bool] | None = None
    status: int = 400
    code: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    hits: int = 0

    def matches(self, operation: str, body: dict[str, Any]) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.operation is not None and self.operation != operation:
            return False
        return self.when is None or bool(self.when(body))


class FaultProxy:
    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rules: list[Rule] = []
        self.seen: list[tuple[str, str]] = []  # (operation, what happened)
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._server: http.server.ThreadingHTTPServer | None = None
        self.port = 0
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- rules ------------------------------------------------------------------------------------
    def fail(self, operation: str | None, action: str, *, times: int | None = None,
             when: Callable[[dict[str, Any]], bool] | None = None, **details: Any) -> Rule:
        rule = Rule(operation, action, times, when, **details)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def operations(self, outcome: str | None = None) -> list[str]:
        with self._lock:
            return [op for op, what in self.seen if outcome is None or what == outcome]

    def _decide(self, operation: str, body: dict[str, Any]) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(operation, body):
                    rule.hits += 1
                    return rule
        return None

    # -- listening --------------------------------------------------------------------------------
    def up(self) -> None:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def down(self) -> None:
        """Stop listening and cut every open connection: the next connect is refused."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._release.set()
        self.down()

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the handler ------------------------------------------------------------------------------
    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            upstream: http.client.HTTPConnection | None = None

            def setup(self) -> None:
                super().setup()
                # Headers and body leave in separate writes: without this, Nagle and delayed ACKs hold
                # every answer back by ~40 ms.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with proxy._lock:
                    proxy._sockets.add(self.connection)

            def finish(self) -> None:
                with proxy._lock:
                    proxy._sockets.discard(self.connection)
                if self.upstream is not None:
                    self.upstream.close()
                try:
                    super().finish()
                except OSError:
                    pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                operation = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                rule = proxy._decide(operation, body)
                action = rule.action if rule else "forward"
                with proxy._lock:
                    proxy.seen.append((operation, action))
                if action == "forward":
                    return self._send(*self._forward(raw))
                if action == "throttle":
                    return self._error(400, "ThrottlingException", "Rate of requests exceeds the allowed throughput.")
                if action == "error":
                    return self._error(rule.status, rule.code, rule.payload.get("message", "injected"), rule.payload)
                if action == "respond":
                    return self._send(rule.status, json.dumps(rule.payload).encode())
                if action == "badsig":
                    return self._error(400, "InvalidSignatureException", self._canonical_echo())
                if action == "html503":
                    return self._send(503, b"<html><body>503 Service Temporarily Unavailable</body></html>", "text/html")
                if action == "drop":
                    return self._cut()
                if action == "lost":
                    self._forward(raw)
                    return self._cut()
                if action == "stall":
                    answer = self._forward(raw)
                    proxy._release.wait(HOLD_SECONDS)
                    return self._send(*answer)
                if action == "hang":
                    proxy._release.wait(HOLD_SECONDS)
                    return self._cut()
                raise AssertionError(f"unknown action {action!r}")

            def _forward(self, raw: bytes) -> tuple[int, bytes]:
                if self.upstream is None:
                    self.upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")}
                self.upstream.request("POST", "/", body=raw, headers=headers)
                response = self.upstream.getresponse()
                return response.status, response.read()

            def _canonical_echo(self) -> str:
                token = self.headers.get("X-Amz-Security-Token", "")
                signature = (self.headers.get("Authorization") or "").rpartition("Signature=")[2]
                return (
                    "The request signature we calculated does not match the signature you provided. Check your "
                    "AWS Secret Access Key and signing method.\n\nThe Canonical String for this request should "
                    f"have been\n'POST\n/\n\nhost:{self.headers.get('Host')}\nx-amz-security-token:{token}\n"
                    f"x-amz-target:{self.headers.get('X-Amz-Target')}\n'\n\nyou sent Signature={signature}"
                )

            def _error(self, status: int, code: str, message: str, extra: dict[str, Any] | None = None) -> None:
                payload = {"__type": ERROR_PREFIX + code, "message": message}
                payload.update({k: v for k, v in (extra or {}).items() if k != "message"})
                self._send(status, json.dumps(payload).encode())

            def _send(self, status: int, data: bytes, content_type: str = "application/x-amz-json-1.0") -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                except OSError:
                    self.close_connection = True  # the client gave up (a timeout test)

            def _cut(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
