"""The benchmark's probes of the client alone: memory per entity, and the warm acquire with no socket.
They print figures and the tests never assert a figure; what is tested is that each runs as a command,
refuses bad input by its option's name, and that the warm probe's measured acquires never reach the
table (only its warm-up and the one whose answer it records do)."""

from __future__ import annotations

import subprocess
import sys
import uuid

import boto3

from zae_limiter.benchmark import warm
from zae_limiter.core import schema


def test_the_warm_probes_measured_acquires_send_nothing(endpoint_url: str) -> None:
    table = f"warm_{uuid.uuid4().hex[:8]}"
    assert warm.measure(endpoint_url, acquires=30, limit_count=3, table=table) > 0
    client = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    item = client.get_item(TableName=table, Key=schema.bucket_key("api-key", "gpt"), ConsistentRead=True)["Item"]
    # The bucket counts every admission a write carried: the warm-up and the recorded acquire, none of
    # the 5 x 30 measured ones (their exchange was the recorded answer).
    assert int(item[schema.ACQUIRES]["N"]) == warm.WARM_UP + 1


def test_the_pause_probe_measures_the_same_recorded_acquire_and_sends_nothing(endpoint_url: str) -> None:
    table = f"warm_{uuid.uuid4().hex[:8]}"
    figures = warm.pause_effect(endpoint_url, acquires=5, limit_count=1, pause=0.001, table=table)
    assert set(figures) == {"acquire_warm", "acquire_after_pause", "loop_warm", "loop_after_pause"}
    assert all(value > 0 for value in figures.values()), figures
    client = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    item = client.get_item(TableName=table, Key=schema.bucket_key("api-key", "gpt"), ConsistentRead=True)["Item"]
    assert int(item[schema.ACQUIRES]["N"]) == warm.WARM_UP + 1  # the paused acquires sent nothing either


def test_the_probes_run_as_commands() -> None:
    for module, args in (("zae_limiter.benchmark.warm", ["--acquires", "10"]),
                         ("zae_limiter.benchmark.warm", ["--acquires", "3", "--pause", "0.001"]),
                         ("zae_limiter.benchmark.memory", ["--entities", "20"])):
        done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip(), module
    bad = subprocess.run([sys.executable, "-m", "zae_limiter.benchmark.warm", "--acquires", "0"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--acquires" in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "zae_limiter.benchmark.warm", "--pause", "5"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--pause" in bad.stderr
