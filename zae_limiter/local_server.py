"""The embedded DynamoDB's server process: moto's WSGI application behind a small keep-alive HTTP/1.1
server that applies one request at a time. Run as `python -m zae_limiter.local_server --port N` (local.py
starts it with `--fd`: a socket it bound itself, so that a port in use fails in the caller).

Why not moto's own server (werkzeug's development server):
- DynamoDB applies a conditional write atomically; moto's threaded server lets two conditional updates
  of one item interleave, and both pass. Applying requests one at a time restores the guarantee the
  rate limiter is built on.
- werkzeug closes the connection after every response and then waits 10 ms for stray request bytes, so
  every request paid a TCP connect and 10 ms; DynamoDB clients keep their connections open.
- moto ignores a TransactWriteItems' ClientRequestToken, so a transaction sent again after a lost answer
  was applied twice (a cascade acquire charged twice). DynamoDB applies it once: a repeat of a
  successful call with the same token within 10 minutes succeeds without making changes, and the same
  token on other parameters is an IdempotentParameterMismatchException. `IdempotentTransactions` does that.
- moto keeps every instance of its models it ever made, for its dashboard (`BaseModel.instances_tracked`):
  each write's old and new images of the item, with their attributes, ~20 objects a write that are
  never freed; and it keeps every stream record of a table as nested dicts. So the server's memory grew
  with every write, and so did the full passes of Python's cyclic garbage collector, which walk every
  live object: past a second after some minutes of benchmark, past the clients' 2 s read timeout in
  its last cells (an acquire then ended in WriteOutcomeUnknown). `stop_tracking_instances` and
  `compact_stream_records` (each record pickled, as bytes the collector does not walk; GetRecords
  answers with the same record) keep the server's objects to its tables' items and one per stream
  record. The stream records themselves stay for the table's life (DynamoDB keeps them 24 hours).
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import io
import json
import os
import pickle
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable, Iterable
from urllib.parse import unquote

HOST = "127.0.0.1"
MISSING_EXTRA_EXIT = 3  # moto's server cannot be imported: the local extra is missing (see local.py)
HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive"}
TOKEN_SECONDS = 600.0  # how long DynamoDB remembers a transaction's ClientRequestToken
Answer = tuple[str, list[tuple[str, str]], bytes]  # status line, headers, body


class IdempotentTransactions:
    """DynamoDB's rule for a TransactWriteItems with a ClientRequestToken (used under the server's lock)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._answers: dict[str, tuple[float, str, Answer]] = {}  # token: (expiry, request digest, answer)

    @staticmethod
    def token_of(target: str | None, body: bytes) -> str | None:
        if not target or not target.endswith(".TransactWriteItems"):
            return None
        try:
            token = json.loads(body).get("ClientRequestToken")
        except (ValueError, AttributeError):
            return None
        return token if isinstance(token, str) and token else None

    def repeat(self, token: str, body: bytes) -> Answer | None:
        """The answer to give a call with `token` instead of applying it, or None: apply it."""
        now = self.clock()
        # Tokens are kept in the order they expire (one lifetime for all): drop from the front, so a
        # request costs O(expired), not a scan of the ten minutes' tokens.
        while self._answers:
            oldest, (expiry, _, _) = next(iter(self._answers.items()))
            if expiry > now:
                break
            del self._answers[oldest]
        kept = self._answers.get(token)
        if kept is None:
            return None
        if kept[1] != _digest(body):
            message = json.dumps({
                "__type": "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException",
                "message": "The request uses the same client token as a previous, but non-identical request.",
            }).encode()
            return "400 Bad Request", [("Content-Type", "application/x-amz-json-1.0")], message
        return kept[2]

    def keep(self, token: str, body: bytes, answer: Answer) -> None:
        if answer[0].startswith("200"):  # only a successful call is remembered: a refused one changed nothing
            self._answers[token] = (self.clock() + TOKEN_SECONDS, _digest(body), answer)


def _digest(body: bytes) -> str:
    """The request's parameters, the token aside (a resend is the same request, byte for byte or not)."""
    request = json.loads(body)
    request.pop("ClientRequestToken", None)
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


def wsgi_environ(handler: http.server.BaseHTTPRequestHandler, body: bytes, port: int) -> dict[str, Any]:
    """PEP 3333's environ for the request `handler` has read (moto's server is a WSGI app)."""
    path, _, query = handler.path.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": handler.command,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote(path),
        "QUERY_STRING": query,
        "REQUEST_URI": handler.path,
        "RAW_URI": handler.path,
        "SERVER_NAME": HOST,
        "SERVER_PORT": str(port),
        "SERVER_PROTOCOL": handler.request_version,
        "REMOTE_ADDR": handler.client_address[0],
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if handler.headers.get("Content-Type"):
        environ["CONTENT_TYPE"] = handler.headers["Content-Type"]
    for name, value in handler.headers.items():
        key = "HTTP_" + name.upper().replace("-", "_")
        if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
            environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def stop_tracking_instances() -> bool:
    """Make moto stop keeping a reference to every model instance it creates (see the module's
    docstring); what it kept so far is let go. Its dashboard (`/moto-api/data.json`) then lists none."""
    try:
        from moto.core.common_models import BaseModel
        from moto.core.model_instances import reset_model_data
    except ImportError:
        return False

    def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
        return super(BaseModel, cls).__new__(cls)  # the next base's (dict's, for a model that is also a dict)

    BaseModel.__new__ = staticmethod(__new__)  # type: ignore[method-assign, assignment]
    reset_model_data()
    return True


def compact_stream_records() -> bool:
    """Make moto keep each DynamoDB stream record pickled (see the module's docstring). False,
    and nothing changed, where this moto's stream records are not the shape this was written for."""
    try:
        from moto.dynamodb.models.table import StreamRecord
    except ImportError:
        return False
    if getattr(StreamRecord, "_zae_compact", False):
        return True
    if not callable(getattr(StreamRecord, "to_json", None)):
        return False
    built, answered = StreamRecord.__init__, StreamRecord.to_json

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        built(self, *args, **kwargs)
        if "record" in self.__dict__:  # a moto that keeps it elsewhere is left as it is
            # Pickled, not JSON: the record holds datetimes and raw bytes (binary attributes), which
            # GetRecords then writes out as it would have written the record itself.
            self.__dict__["_packed"] = pickle.dumps(self.__dict__.pop("record"), pickle.HIGHEST_PROTOCOL)

    def to_json(self: Any) -> dict[str, Any]:
        packed = self.__dict__.get("_packed")
        return pickle.loads(packed) if packed is not None else answered(self)

    StreamRecord.__init__, StreamRecord.to_json = __init__, to_json  # type: ignore[method-assign]
    StreamRecord._zae_compact = True  # type: ignore[attr-defined]
    return True


def make_handler(app: Callable[..., Iterable[bytes]], port: int) -> type[http.server.BaseHTTPRequestHandler]:
    lock = threading.Lock()
    transactions = IdempotentTransactions()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # An answer is one write; without this Nagle could still hold back a write after a write.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def handle_one(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            environ = wsgi_environ(self, body, port)
            answer: dict[str, Any] = {}

            def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
                answer["status"], answer["headers"] = status, headers
                return lambda data: answer.setdefault("written", []).append(data)

            token = transactions.token_of(self.headers.get("X-Amz-Target"), body)
            with lock:  # one request at a time: conditional writes stay atomic
                repeated = transactions.repeat(token, body) if token else None
                if repeated is not None:
                    status, headers, data = repeated
                else:
                    result = app(environ, start_response)
                    try:
                        data = b"".join(answer.get("written", [])) + b"".join(result)
                    finally:
                        getattr(result, "close", lambda: None)()
                    status, headers = answer["status"], answer["headers"]
                    if token:
                        transactions.keep(token, body, (status, headers, data))
            lines = [f"HTTP/1.1 {status}", f"Server: {self.version_string()}", f"Date: {self.date_time_string()}"]
            lines += [f"{name}: {value}" for name, value in headers if name.lower() not in HOP_BY_HOP]
            lines.append(f"Content-Length: {len(data)}")
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
            # One write, head and body together, as a small answer arrives from DynamoDB: two writes
            # would cost every client a second read for each answer.
            self.wfile.write(head if self.command == "HEAD" else head + data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = handle_one

        def log_message(self, format: str, *args: Any) -> None:  # a line per request is noise at this rate
            pass

    return Handler


def _exit_with_parent(parent_pid: int) -> None:
    # A parent killed without cleanup (SIGKILL, a crash) cannot stop us: notice it and go.
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto server for zae-limiter: keep-alive, one request at a time")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fd", type=int, help="Serve on this inherited listening socket (bound to --port) instead of binding.")
    parser.add_argument("--parent-pid", type=int, help="Exit when this process is gone (no orphaned server).")
    args = parser.parse_args(argv)
    if args.parent_pid:
        threading.Thread(target=_exit_with_parent, args=(args.parent_pid,), daemon=True).start()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    try:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    except ImportError as error:
        # One line the parent shows after its hint (local.LOCAL_EXTRA_HINT), never a traceback.
        print(f"cannot import moto's server: {error}", file=sys.stderr)
        sys.exit(MISSING_EXTRA_EXIT)

    stop_tracking_instances()
    compact_stream_records()
    app = DomainDispatcherApplication(create_backend_app)
    server_class = type("Server", (http.server.ThreadingHTTPServer,), {"request_queue_size": 128})  # bursts of connects
    if args.fd is None:
        try:
            server = server_class((HOST, args.port), make_handler(app, args.port))
        except OSError as error:
            print(f"cannot listen on {HOST}:{args.port}: {error.strerror or error}", file=sys.stderr)
            sys.exit(1)
    else:
        server = server_class((HOST, args.port), make_handler(app, args.port), bind_and_activate=False)
        server.socket.close()
        server.socket = socket.socket(fileno=args.fd)  # bound and listening already (local.listen)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
