"""The embedded backend: a moto server on 127.0.0.1 that stops on exit, and the table from the schema."""

from __future__ import annotations

import urllib.request

import pytest

from zae_limiter import ValidationError
from zae_limiter.core import schema
from zae_limiter.transport.clients import make_client
from zae_limiter.local import LocalDynamoDB, ensure_table


def test_server_binds_loopback_and_stops_on_exit():
    with LocalDynamoDB() as url:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=5) as response:
            assert response.status == 200
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=2)


def test_server_process_is_reaped():
    local = LocalDynamoDB()
    local.start()
    process = local.process
    local.stop()
    assert process is not None and process.poll() is not None


def test_ensure_table_is_idempotent_and_matches_the_schema(endpoint_url):
    assert ensure_table("idem", endpoint_url=endpoint_url, region="us-east-1") is True
    assert ensure_table("idem", endpoint_url=endpoint_url, region="us-east-1") is False
    client = make_client("dynamodb", "us-east-1", endpoint_url)
    table = client.describe_table(TableName="idem")["Table"]
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {i.name for i in schema.TABLE.indexes}
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    ttl = client.describe_time_to_live(TableName="idem")["TimeToLiveDescription"]
    assert ttl["AttributeName"] == schema.TTL
    client.close()


def test_ensure_table_refuses_aws():
    with pytest.raises(ValidationError) as raised:
        ensure_table("t", endpoint_url=None, region="us-east-1")  # type: ignore[arg-type]
    assert raised.value.field == "endpoint_url"
    with pytest.raises(ValidationError, match="endpoint_url"):
        ensure_table("t", endpoint_url="not a url", region="us-east-1")


def test_server_exits_when_its_parent_is_killed():
    import os
    import signal
    import subprocess
    import sys
    import time

    # A parent that starts the server and is then killed without any cleanup.
    parent = subprocess.Popen(
        [sys.executable, "-c", "from zae_limiter.local import LocalDynamoDB; import sys, time; "
         "l = LocalDynamoDB(); print(l.start(), l.process.pid, flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )
    url, child_pid = parent.stdout.readline().split()
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(int(child_pid), 0)
        except ProcessLookupError:
            break
        try:
            os.waitpid(int(child_pid), os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.2)
    else:
        os.kill(int(child_pid), signal.SIGKILL)
        raise AssertionError("the server outlived its parent")
