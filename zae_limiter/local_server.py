"""The embedded DynamoDB's server process: moto's WSGI application with each request applied whole.

DynamoDB applies a conditional write atomically; moto's threaded server does not (two conditional
updates of one item can interleave and both pass). Serialising requests restores the guarantee the rate
limiter is built on. Run as `python -m zae_limiter.local_server --port N` (127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import signal
import sys
import threading
from typing import Any, Callable, Iterable

HOST = "127.0.0.1"


def serialised(app: Callable[..., Iterable[bytes]]) -> Callable[..., list[bytes]]:
    lock = threading.Lock()

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        # Read the body before taking the lock: a slow or vanished client must not stall everyone else.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length) if length else b"")
        with lock:
            result = app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

    return application


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto server for zae-limiter, requests applied one at a time")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    from moto.moto_server.threaded_moto_server import MotoRequestHandler  # noqa: F401 - moto's handler
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import run_simple

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request is noise at this rate
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(HOST, args.port, serialised(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
