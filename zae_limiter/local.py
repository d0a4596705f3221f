"""The embedded DynamoDB: moto's server on 127.0.0.1, and the table built from the schema module.

    with LocalDynamoDB() as endpoint_url:
        ensure_table("rate_limits", endpoint_url=endpoint_url, region="us-east-1")

The server runs in its own process so that it never competes with the client for the GIL, and several
client processes can share it.
"""

from __future__ import annotations

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

from . import clients, schema
from .errors import StorageError, ValidationError
from .validation import check_id

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class LocalDynamoDB:
    """moto's server on 127.0.0.1 and a free port, in a child process, stopped on exit.
    Also serves DynamoDB Streams, Lambda, IAM and the rest of what moto emulates at the same endpoint."""

    def __init__(self, port: int | None = None, startup_timeout: float = 30.0) -> None:
        self.port = port
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint_url: str | None = None

    def start(self) -> str:
        if self.process is not None:
            return self.endpoint_url  # type: ignore[return-value]
        last_error = ""
        for _ in range(3):  # a free port can be taken between choosing and binding it
            port = self.port or free_port()
            env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
            # Never a pipe nobody reads: a full pipe would block the server on its next log line.
            log = tempfile.TemporaryFile()
            process = subprocess.Popen(
                [sys.executable, "-m", "zae_limiter.local_server", "--port", str(port), "--parent-pid", str(os.getpid())],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
            )
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
            last_error = self._stop_process(process, log)
            if self.port:
                break
        raise StorageError(f"the embedded DynamoDB (moto server) did not start: {last_error.strip()[-2000:]}")

    def _wait_ready(self, process: subprocess.Popen[bytes], url: str) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1):
                    return True
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        return False

    @staticmethod
    def _stop_process(process: subprocess.Popen[bytes], log: Any) -> str:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
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
