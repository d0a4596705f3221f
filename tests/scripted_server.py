"""A DynamoDB stand-in on 127.0.0.1 that answers from a script: throttles, 5xx, dropped connections,
delays. For fault injection at the transport; the real protocol work is tested against moto."""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import threading
import time
import zlib
from typing import Any


class ScriptedDynamoDB:
    """Each request pops the next step: ("ok", body) | ("error", status, type, message, extra) |
    ("drop",) close without answering | ("delay", seconds, body) | ("raw", status, bytes) |
    ("interim", body) a `100 Continue` before the answer | ("stray", body, extra) the answer and then a
    second one nobody asked for | ("badcrc", body) an x-amz-crc32 that does not match | ("truncate", body)
    the head and half the body, then close | ("ok-close", body) answer, then close the connection at
    once (no `Connection: close`: a server closing an idle connection). When the script is empty, "ok" {}. Answers carry
    x-amz-crc32, as DynamoDB's do.

    `keep_alive=S`: a request on a connection idle S seconds or more (by `clock`) is dropped unread and
    the connection closed, as when a server's idle timer fires as the request arrives."""

    def __init__(self, tls: "ssl.SSLContext | None" = None, keep_alive: float | None = None,
                 clock: Any = time.monotonic) -> None:
        self.script: list[tuple] = []
        self.received: list[dict[str, Any]] = []
        self.dropped_idle = 0
        self.connections = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            last_answer: float | None = None

            def setup(self) -> None:
                super().setup()
                owner.connections += 1

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.last_answer is not None and keep_alive is not None and clock() - self.last_answer >= keep_alive:
                    owner.dropped_idle += 1
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                owner.received.append({"target": self.headers.get("X-Amz-Target"), "headers": dict(self.headers), "body": json.loads(body or b"{}")})
                step = owner.script.pop(0) if owner.script else ("ok", {})
                kind = step[0]
                if kind in ("interim", "stray", "badcrc", "truncate"):
                    return self._raw(kind, *step[1:])
                if kind == "ok-close":  # answer as if keeping the connection, then close it at once
                    self._answer(200, step[1])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if kind == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if kind == "delay":
                    time.sleep(step[1])
                    return self._answer(200, step[2])
                if kind == "raw":  # ("raw", status, bytes): not DynamoDB's JSON (a proxy's page)
                    return self._answer(step[1], None, raw=step[2])
                if kind == "error":
                    _, status, type_, message, extra = step
                    return self._answer(status, {"__type": f"com.amazonaws.dynamodb.v20120810#{type_}", "message": message, **extra})
                return self._answer(200, step[1])

            def _answer(self, status: int, payload: dict[str, Any] | None, raw: bytes | None = None) -> None:
                data = raw if raw is not None else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/x-amz-json-1.0")
                    self.send_header("Content-Length", str(len(data)))
                    if raw is None:
                        self.send_header("x-amz-crc32", str(zlib.crc32(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (a timeout test)
                self.last_answer = clock()

            def _raw(self, kind: str, payload: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
                wire = _answer_bytes(payload, crc_offset=1 if kind == "badcrc" else 0)
                if kind == "interim":
                    wire = b"HTTP/1.1 100 Continue\r\n\r\n" + wire
                elif kind == "stray":
                    wire += _answer_bytes(extra or {})
                elif kind == "truncate":
                    wire = wire[: len(wire) - len(json.dumps(payload)) // 2 - 1]
                try:
                    self.wfile.write(wire)
                    self.wfile.flush()
                except OSError:
                    pass
                if kind == "truncate":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                self.last_answer = clock()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:  # HTTPS: the handshake happens as each connection is accepted
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "ScriptedDynamoDB":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def targets(self) -> list[str]:
        return [r["target"].rpartition(".")[2] for r in self.received]


def _answer_bytes(payload: dict[str, Any], crc_offset: int = 0) -> bytes:
    data = json.dumps(payload).encode()
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {len(data)}\r\n"
        f"x-amz-crc32: {(zlib.crc32(data) + crc_offset) % 2**32}\r\n\r\n"
    ).encode() + data


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port




def self_signed_tls(directory: Any) -> tuple[ssl.SSLContext, str]:
    """A server context for 127.0.0.1 with a fresh self-signed certificate, and the certificate's path
    (the client's CA file)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = f"{directory}/cert.pem", f"{directory}/key.pem"
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path
