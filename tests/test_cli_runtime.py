"""Runtime commands (entity, limits, available) against the embedded server, in-process and as a subprocess."""

from __future__ import annotations

import os
import re
import time
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from zae_limiter import Limit, SyncRateLimiter
from zae_limiter.cli import cli


@pytest.fixture
def run(endpoint_url, table_name):
    env = {"ZAE_LIMITER_ENDPOINT_URL": endpoint_url, "ZAE_LIMITER_TABLE": table_name, "AWS_DEFAULT_REGION": "us-east-1"}

    def run(*args: str, input: str | None = None):
        return CliRunner().invoke(cli, list(args), env=env, input=input)

    return run


@pytest.fixture
def limiter(endpoint_url, table_name):
    with SyncRateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url,
                         config_cache_seconds=0) as limiter:
        yield limiter


def test_entity_lifecycle(run, limiter):
    result = run("entity", "create", "acme", "--name", "Acme", "--meta", "tier=gold")
    assert result.exit_code == 0, result.output
    assert "acme" in result.output and "tier=gold" in result.output
    assert run("entity", "create", "key-1", "--parent", "acme", "--cascade").exit_code == 0
    assert limiter.get_entity("key-1").cascade is True
    shown = run("entity", "show", "acme")
    assert shown.exit_code == 0 and "Acme" in shown.output
    children = run("entity", "children", "acme")
    assert "key-1" in children.output
    exists = run("entity", "create", "acme")
    assert exists.exit_code == 1 and "already exists" in exists.output
    missing = run("entity", "show", "nobody")
    assert missing.exit_code == 1 and "does not exist" in missing.output
    assert run("entity", "delete", "key-1", input="n\n").exit_code == 1
    assert run("entity", "delete", "key-1", "--yes").exit_code == 0
    assert run("entity", "show", "key-1").exit_code == 1


def test_limits_at_every_level_and_available(run, limiter):
    result = run("limits", "set", "rpm=100/min,tpm=10000/min:50000", "--entity", "acme", "--resource", "gpt-4")
    assert result.exit_code == 0, result.output
    assert limiter.get_limits("acme", resource="gpt-4") == [Limit.per_minute("rpm", 100), Limit.per_minute("tpm", 10_000, burst=50_000)]
    assert run("limits", "set", "rpm=5/s", "--resource", "gpt-4").exit_code == 0
    assert limiter.get_resource_defaults("gpt-4") == [Limit.per_second("rpm", 5)]
    assert run("limits", "set", "rpm=1/day", "--system").exit_code == 0
    assert limiter.get_system_defaults() == [Limit.per_day("rpm", 1)]
    shown = run("limits", "get", "--entity", "acme", "--resource", "gpt-4")
    assert "tpm=10000/min:50000" in shown.output
    started = time.monotonic()
    with limiter.acquire("acme", "gpt-4", consume={"rpm": 1, "tpm": 20_000}):
        pass
    tokens = run("available", "acme", "gpt-4")
    elapsed = time.monotonic() - started
    assert tokens.exit_code == 0, tokens.output
    # 30,000 tpm left of 50,000, plus the refill (10,000 a minute) while the test ran: on a busy machine
    # that was more than the 100 tokens a fixed "30,0" allowed.
    shown_tpm = float(re.search(r"tpm\s*│\s*([\d,.]+)", tokens.output)[1].replace(",", ""))
    assert 30_000 <= shown_tpm <= 30_000 + elapsed * 10_000 / 60 + 0.001, (shown_tpm, elapsed)
    stored_wins = run("available", "other", "nothing", "--limits", "rpm=7/min")
    assert "1.000" in stored_wins.output  # the system default beats the --limits fallback
    assert run("limits", "delete", "--system").exit_code == 0
    assert limiter.get_system_defaults() == []
    fallback = run("available", "other", "nothing", "--limits", "rpm=7/min")
    assert "7.000" in fallback.output


@pytest.mark.parametrize(
    "args, needle",
    [
        (["limits", "set", "rpm=100", "--entity", "a"], "cannot read 'rpm=100'"),
        (["limits", "set", "rpm=100/fortnight", "--system"], "unknown period"),
        (["limits", "set", "rpm=1/min"], "say whose limits"),
        (["limits", "set", "rpm=1/min", "--system", "--entity", "a"], "--system stands alone"),
        (["entity", "create", "bad#id"], "ENTITY_ID"),
        (["entity", "create", "a", "--meta", "novalue"], "--meta"),
        (["available", "k", "r", "--limits", "rpm=x/min"], "not a number"),
    ],
)
def test_bad_input_exits_2_and_names_the_problem(run, args, needle):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert needle in result.output


def test_no_limits_anywhere_is_a_usage_error(run):
    result = run("available", "k", "r")
    assert result.exit_code == 2 and "no limits for entity 'k'" in result.output


def test_runtime_command_as_a_subprocess(endpoint_url, table_name):
    env = {**os.environ, "ZAE_LIMITER_ENDPOINT_URL": endpoint_url, "ZAE_LIMITER_TABLE": table_name, "AWS_DEFAULT_REGION": "us-east-1"}
    script = str(Path(sys.executable).with_name("zae-limiter"))
    created = subprocess.run([script, "entity", "create", "sub"], capture_output=True, text=True, env=env, timeout=120)
    assert created.returncode == 0, created.stderr
    again = subprocess.run([script, "entity", "create", "sub"], capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 1
    assert "already exists" in again.stderr and "Traceback" not in again.stderr


def test_no_credentials_is_a_clear_error(tmp_path):
    """Against AWS with no credentials anywhere: exit 1 with a sentence, not botocore's traceback."""
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true",
        "ZAE_LIMITER_TABLE": "tbl", "AWS_DEFAULT_REGION": "us-east-1",
    }
    script = str(Path(sys.executable).with_name("zae-limiter"))
    result = subprocess.run([script, "entity", "show", "k"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "no AWS credentials" in result.stderr and "Traceback" not in result.stderr
