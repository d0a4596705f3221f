"""A Redis-backed limiter for comparison (`--compare-redis`): throttled-py's GCRA on a local redis-server.

GCRA is the token bucket stated as a theoretical arrival time, as ours is: `per_sec(rate, burst=capacity)`
holds `capacity` tokens refilled at `rate` a second, decided by one Lua script per acquire (EVALSHA) on
the server's clock. throttled-py's `token_bucket` strategy refills in whole seconds (Redis TIME's
seconds only), so GCRA is the like-for-like one. It runs single-limit scenarios only (it has no
cascade).

The server is the Debian package `redis-server`, started here on 127.0.0.1 and a free port, with no
persistence, and stopped at the end; the Python client is the `bench-redis` extra (throttled-py,
redis-py and its C reply parser hiredis). Neither is installed
unless asked for (`make bench BENCH_ARGS="--compare-redis"` installs both).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

from ..local import free_port, stop_process
from ..local_server import HOST
from .engine import Session
from .spec import Scenario, async_op, sync_op
SERVER = "redis-server"
EXTRA = "bench-redis"


class RedisUnavailable(RuntimeError):
    """The Redis comparison cannot run; the message says why in one line."""


def check_client() -> None:
    try:
        import redis  # noqa: F401
        import throttled  # noqa: F401
    except ImportError as error:
        raise RedisUnavailable(
            f"--compare-redis needs the {EXTRA} extra ({error.name} is missing): pip install -e '.[{EXTRA}]'"
        ) from None


def describe() -> str:
    """The versions compared, for the table's title."""
    from importlib.metadata import version

    found = shutil.which(SERVER)
    server = subprocess.run([found, "--version"], capture_output=True, text=True).stdout if found else ""
    server_version = next((part[2:] for part in server.split() if part.startswith("v=")), "?")
    return f"throttled-py {version('throttled-py')} (GCRA), redis-py {version('redis')}, redis-server {server_version} on 127.0.0.1"


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(startup_timeout: float = 10.0) -> Iterator[str]:
    """A redis-server of its own on 127.0.0.1 for the length of the block; yields its URL."""
    binary = shutil.which(SERVER)
    if binary is None:
        raise RedisUnavailable(f"--compare-redis: {SERVER} is not installed (the Debian package {SERVER}; "
                               f"`make bench BENCH_ARGS=--compare-redis` installs it with apt-get)")
    port = free_port()
    folder = tempfile.TemporaryDirectory(prefix="zae-bench-redis-")
    process = subprocess.Popen(
        [binary, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", folder.name],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + startup_timeout
        while not _answers_ping(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RedisUnavailable(f"--compare-redis: {SERVER} did not start on {HOST}:{port}")
            time.sleep(0.05)
        yield f"redis://{HOST}:{port}/0"
    finally:
        stop_process(process, timeout=10)
        folder.cleanup()


class _Calls:
    """Script calls sent: throttled-py sends exactly one EVALSHA per `limit` (one atomic action)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0

    def add(self) -> None:
        with self.lock:
            self.count += 1

    def snapshot(self) -> dict:
        with self.lock:
            return {"requests": {"EVALSHA": self.count}, "read_units": 0.0, "write_units": 0.0}


class RedisTarget:
    """`scenario` (single limit, one key) on throttled-py's GCRA with a RedisStore."""

    def __init__(self, scenario: Scenario, url: str, key: str) -> None:
        if scenario.cascade or scenario.entities or len(scenario.limits) != 1:
            raise ValueError(f"the Redis comparison runs single-limit scenarios on one key, not {scenario.name!r}")
        self.scenario = scenario
        self.url = url
        self.key = key

    def _throttle(self, module: Any) -> Any:
        (spec,) = self.scenario.limits
        if spec.period != "second":
            raise ValueError("the Redis comparison takes per-second limits")
        import throttled

        quota = throttled.per_sec(spec.rate, burst=spec.capacity)
        store = module.RedisStore(server=self.url)
        throttle = module.Throttled(key=self.key, using="gcra", quota=quota, store=store,
                                    cost=self.scenario.consume[spec.name])
        return throttle, store

    def prepare(self) -> None:
        pass  # a key never used is a full bucket

    def scan(self) -> list[dict]:
        return []  # no DynamoDB items

    def open_sync(self, track_capacity: bool) -> Session:
        import throttled
        from throttled.exceptions import LimitedError

        calls = _Calls()
        throttle, store = self._throttle(throttled)

        def acquire() -> Any:
            calls.add()
            return throttle

        op = sync_op(self.scenario, acquire, LimitedError)
        return Session(op=op, counts=calls.snapshot, close=lambda: _close_sync(store))

    async def open_async(self, track_capacity: bool) -> Session:
        import throttled.asyncio as module
        from throttled.exceptions import LimitedError

        calls = _Calls()
        throttle, store = self._throttle(module)

        def acquire() -> Any:
            calls.add()
            return throttle

        op = async_op(self.scenario, acquire, LimitedError)

        async def close() -> None:
            await _client_of(store).aclose()

        return Session(op=op, counts=calls.snapshot, close=close)


def _client_of(store: Any) -> Any:
    # throttled-py's stores have no close(); the client they hold is redis-py's, which has.
    return store._backend.get_client()


def _close_sync(store: Any) -> None:
    _client_of(store).close()
