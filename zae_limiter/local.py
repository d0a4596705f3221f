"""The embedded DynamoDB: moto's server on 127.0.0.1, and the table built from the schema module.

    with LocalDynamoDB() as endpoint_url:
        ensure_table("rate_limits", endpoint_url=endpoint_url, region="us-east-1")

The server runs in its own process so that it never competes with the client for the GIL, and several
client processes can share it.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

from .transport import clients
from .core import schema
from .core.errors import StorageError, ValidationError
from .local_server import HOST, MISSING_EXTRA_EXIT
from .core.validation import check_id

LOCAL_EXTRA_HINT = "the embedded DynamoDB needs the local extra: pip install 'zae-limiter[local]'"


class EmbeddedServerError(StorageError):
    """The embedded DynamoDB could not start: its port is taken, the local extra is missing, or the
    server failed. The message says which, in one line."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen[Any], timeout: float) -> None:
    """Ask a child server to stop (SIGTERM); kill it if it has not gone within `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def listen(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:`port` (0: a free port), made here so that a port in use is an
    error at once: the server process inherits it and never binds anything itself, so nothing else that
    listens on the port (another `zae-limiter local`) can be taken for it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A port the previous run left in TIME_WAIT is free to listen on; one with a listener is not.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
        sock.listen(128)  # bursts of connects from many clients at once
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise EmbeddedServerError(
                f"port {port} on {HOST} is in use by another process (another zae-limiter local?): "
                "choose another port, or none for a free one"
            ) from None
        raise EmbeddedServerError(f"cannot listen on {HOST}:{port}: {error.strerror or error}") from None
    return sock


def require_local_extra() -> None:
    """Fail in one line, naming the extra, when moto is not installed. (What else moto's server needs,
    flask for one, is found missing by the server process, which exits with MISSING_EXTRA_EXIT.)"""
    try:
        found = importlib.util.find_spec("moto") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise EmbeddedServerError(f"{LOCAL_EXTRA_HINT} (moto is not installed)")


class LocalDynamoDB:
    """moto's server on 127.0.0.1 and a free port (or `port`), in a child process, stopped on exit.
    Also serves DynamoDB Streams, Lambda, IAM and the rest of what moto emulates at the same endpoint.
    `start()` raises EmbeddedServerError when `port` is in use or the local extra (moto) is missing."""

    def __init__(self, port: int | None = None, startup_timeout: float = 30.0) -> None:
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
            raise ValidationError("port", f"must be a port number from 1 to 65535, or None for a free one, got {port!r}")
        self.port = port
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint_url: str | None = None

    def start(self) -> str:
        if self.process is not None:
            return self.endpoint_url  # type: ignore[return-value]
        require_local_extra()
        sock = listen(self.port or 0)
        port = sock.getsockname()[1]
        env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
        # Never a pipe nobody reads: a full pipe would block the server on its next log line.
        log = tempfile.TemporaryFile()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "zae_limiter.local_server", "--port", str(port), "--fd", str(sock.fileno()),
                 "--parent-pid", str(os.getpid())],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
                pass_fds=(sock.fileno(),),
            )
        except BaseException:
            log.close()
            raise
        finally:
            sock.close()  # the server holds its own copy
        self._log = log
        url = f"http://{HOST}:{port}"
        try:
            ready = self._wait_ready(process, url)
        except BaseException:  # Ctrl-C while starting: never leave the server behind
            self._stop_process(process, log)
            raise
        if ready:
            self.process, self.endpoint_url = process, url
            return url
        output = self._stop_process(process, log)
        if process.returncode == MISSING_EXTRA_EXIT:
            raise EmbeddedServerError(f"{LOCAL_EXTRA_HINT} ({output.strip().splitlines()[-1] if output.strip() else 'moto is missing'})")
        raise EmbeddedServerError(f"the embedded DynamoDB (moto server) did not start: {output.strip()[-2000:]}")

    def _wait_ready(self, process: subprocess.Popen[bytes], url: str) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1):
                    return process.poll() is None
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        return False

    @staticmethod
    def _stop_process(process: subprocess.Popen[bytes], log: Any) -> str:
        stop_process(process, timeout=5)
        log.seek(0)
        output = log.read().decode(errors="replace")
        log.close()
        return output

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            self._stop_process(process, self._log)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def ensure_table(table_name: str, *, endpoint_url: str, region: str = "us-east-1", wait_seconds: float = 30.0) -> bool:
    """Create the table on an emulator from the schema module, with TTL on; True if it was created.
    Idempotent. For emulators and tests only: AWS gets its table from the Pulumi component."""
    check_id("table_name", table_name)
    if not endpoint_url:
        raise ValidationError(
            "endpoint_url", "ensure_table is for emulators; on AWS deploy the table with `zae-limiter deploy`"
        )
    # Control-plane calls on a busy emulator can take longer than the data-plane read timeout.
    client = clients.make_client(
        "dynamodb", region, clients.check_endpoint(endpoint_url), Config(read_timeout=30, retries={"max_attempts": 5})
    )
    try:
        created = True
        try:
            client.create_table(**schema.create_table_request(table_name))
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceInUseException":
                raise StorageError(f"cannot create table {table_name}: {error}", error.response["Error"]["Code"], error) from error
            created = False
        deadline = time.monotonic() + wait_seconds
        while client.describe_table(TableName=table_name)["Table"]["TableStatus"] != "ACTIVE":
            if time.monotonic() > deadline:
                raise StorageError(f"table {table_name} did not become ACTIVE within {wait_seconds}s")
            time.sleep(0.1)
        ttl = client.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            client.update_time_to_live(
                TableName=table_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": schema.TABLE.ttl_attribute},
            )
        return created
    finally:
        client.close()
