"""Real servers for the web integration tests: uvicorn in a subprocess on 127.0.0.1 and a free port,
waited for until it answers, always terminated; a WSGI app under wsgiref in a thread."""

from __future__ import annotations

import os
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx

from zae_limiter.local import HOST, free_port

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
EXAMPLES = ROOT / "examples"
STARTUP_SECONDS = 60.0


def server_environment(extra: Mapping[str, str]) -> dict[str, str]:
    path = os.pathsep.join([str(TESTS), str(EXAMPLES), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {
        **os.environ,
        "PYTHONPATH": path,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        **extra,
    }


def _wait_ready(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer within {STARTUP_SECONDS}s: {log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@contextmanager
def serve(command: Sequence[str], env: Mapping[str, str], port: int) -> Iterator[str]:
    """Run `command` (a server listening on 127.0.0.1:port) until the block ends; yields its base URL."""
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "server.log"
        with open(log, "wb") as sink:  # never a pipe nobody reads
            process = subprocess.Popen(list(command), env=server_environment(env), stdout=sink, stderr=sink, cwd=ROOT)
        url = f"http://{HOST}:{port}"
        try:
            _wait_ready(process, url, log)
            yield url
        finally:
            _stop(process)


@contextmanager
def uvicorn(factory: str, env: Mapping[str, str], workers: int = 1) -> Iterator[str]:
    """`uvicorn <factory> --factory` (a module:function in tests/ or examples/)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", HOST, "--port", str(port),
               "--log-level", "warning", "--workers", str(workers)]
    with serve(command, env, port) as url:
        yield url


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


@contextmanager
def wsgi_server(app: object) -> Iterator[str]:
    """The app under the standard library's WSGI server, in a thread, on 127.0.0.1 and a free port."""
    server = make_server(HOST, 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
