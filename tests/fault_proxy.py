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
  "slow"        hold the request `seconds`, then forward and answer it: applied late, answered
  "respond"     answer `status` with `payload` (a dict) without forwarding
  "badsig"      answer InvalidSignatureException echoing the request's signed headers, session token
                and signature included, as AWS does
  "truncate"    forward, then send the head and half the body and close: applied, the answer cut mid-body
  "headcut"     forward, then send half the status line and headers and close: applied
  "badcrc"      forward, then answer with one digit of the body changed on the way (the server's
                x-amz-crc32 then does not match it): applied
  "gateway"     forward, then answer 502 with an HTML page, as a gateway that gave up on its upstream:
                applied
  "interim"     forward, then send `100 Continue` before the answer: applied and answered
  "stray"       forward, answer, and send a second answer nobody asked for (`payload`, `status`) right
                after it: applied; a client that reads it as its next answer is wrong

Forwarded answers carry the server's x-amz-crc32 and x-amzn-RequestId, as DynamoDB's do. The proxy also
keeps DynamoDB's promise that moto does not: a TransactWriteItems resent with a ClientRequestToken it
has already forwarded is answered with the first answer, not applied again ("replayed").

`keep_alive=S` models a server whose idle timer fires as a request arrives: a request on a kept-alive
connection that has been idle S seconds or more (by `clock`, default time.monotonic) is dropped unread
("idle-close", not applied), as when the server's FIN crosses the request.

`down()` stops listening and cuts open connections (the server is gone: connects are refused); `up()`
listens on the same port again. Works for the sync and the async data plane alike: it is just a socket.
"""

from __future__ import annotations

import http.client
import http.server
import json
import socket
import threading
import time
import zlib
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
    seconds: float = 0.0
    hits: int = 0

    def matches(self, operation: str, body: dict[str, Any]) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.operation is not None and self.operation != operation:
            return False
        return self.when is None or bool(self.when(body))


class FaultProxy:
    def __init__(self, upstream_url: str, *, keep_alive: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.keep_alive, self.clock = keep_alive, clock
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rules: list[Rule] = []
        self._tokens: dict[str, tuple[int, bytes, dict[str, str]]] = {}  # ClientRequestToken -> first answer
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
            last_answer: float | None = None  # by proxy.clock, for keep_alive

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
                idle = self.last_answer is not None and proxy.keep_alive is not None and (
                    proxy.clock() - self.last_answer >= proxy.keep_alive)
                token = body.get("ClientRequestToken") if operation == "TransactWriteItems" else None
                with proxy._lock:
                    replay = proxy._tokens.get(token) if token else None
                rule = None if idle or replay else proxy._decide(operation, body)
                action = "idle-close" if idle else "replayed" if replay else rule.action if rule else "forward"
                with proxy._lock:
                    proxy.seen.append((operation, action))
                if action == "replayed":
                    return self._send(*replay)
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
                    return self._send(503, b"<html><body>503 Service Temporarily Unavailable</body></html>", None, "text/html")
                if action == "drop":
                    return self._cut()
                if action == "lost":
                    self._forward(raw)
                    return self._cut()
                if action == "stall":
                    answer = self._forward(raw)
                    proxy._release.wait(HOLD_SECONDS)
                    return self._send(*answer)
                if action == "slow":
                    proxy._release.wait(rule.seconds)
                    return self._send(*self._forward(raw))
                if action in ("hang", "idle-close"):
                    if action == "hang":
                        proxy._release.wait(HOLD_SECONDS)
                    return self._cut()
                if action in ("truncate", "headcut", "badcrc", "interim", "stray", "gateway"):
                    return self._raw(action, rule, *self._forward(raw))
                raise AssertionError(f"unknown action {action!r}")

            def _forward(self, raw: bytes) -> tuple[int, bytes, dict[str, str]]:
                if self.upstream is None:
                    self.upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")}
                self.upstream.request("POST", "/", body=raw, headers=headers)
                response = self.upstream.getresponse()
                kept = {k: v for k, v in response.getheaders() if k.lower() in ("x-amz-crc32", "x-amzn-requestid")}
                answer = response.status, response.read(), kept
                token = json.loads(raw or b"{}").get("ClientRequestToken") if (self.headers.get("X-Amz-Target") or "").endswith(".TransactWriteItems") else None
                if token:
                    with proxy._lock:
                        proxy._tokens.setdefault(token, answer)
                return answer

            def _raw(self, action: str, rule: Rule, status: int, data: bytes, kept: dict[str, str]) -> None:
                if action == "badcrc":
                    digit = next((i for i, c in enumerate(data) if chr(c).isdigit()), None)
                    if digit is None:
                        kept = {**kept, "x-amz-crc32": str((zlib.crc32(data) + 1) % 2**32)}
                    else:
                        changed = str((int(chr(data[digit])) + 1) % 10).encode()
                        data = data[:digit] + changed + data[digit + 1 :]
                if action == "gateway":
                    status, data, kept = 502, b"<html><body>502 Bad Gateway</body></html>", {}
                head = (f"HTTP/1.1 {status} Answer\r\nContent-Type: application/x-amz-json-1.0\r\n"
                        f"Content-Length: {len(data)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in kept.items()) + "\r\n").encode()
                if action == "truncate":
                    wire = head + data[: len(data) // 2]
                elif action == "headcut":
                    wire = head[: len(head) // 2]
                elif action == "interim":
                    wire = b"HTTP/1.1 100 Continue\r\n\r\n" + head + data
                elif action == "stray":
                    extra = json.dumps(rule.payload).encode()
                    wire = head + data + (f"HTTP/1.1 {rule.status} OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
                                          f"Content-Length: {len(extra)}\r\nx-amz-crc32: {zlib.crc32(extra)}\r\n\r\n").encode() + extra
                else:
                    wire = head + data
                try:
                    self.wfile.write(wire)
                    self.wfile.flush()
                except OSError:
                    pass
                if action in ("truncate", "headcut"):
                    self._cut()
                else:
                    self.last_answer = proxy.clock()

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

            def _send(self, status: int, data: bytes, kept: dict[str, str] | None = None,
                      content_type: str = "application/x-amz-json-1.0") -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (kept or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                except OSError:
                    self.close_connection = True  # the client gave up (a timeout test)
                self.last_answer = proxy.clock()

            def _cut(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
