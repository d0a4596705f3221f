"""The quota model from the CLI (entity disable|enable|set-parent|reset|top-up, quotas, soft limits and
schedules in `limits set` / `limits get`, quota periods in `usage`), in-process and as the console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from zae_limiter import Limit, RateLimitExceeded, ResourceDisabled, SyncRateLimiter
from zae_limiter.cli import cli


@pytest.fixture
def env(endpoint_url, table_name):
    return {"ZAE_LIMITER_ENDPOINT_URL": endpoint_url, "ZAE_LIMITER_TABLE": table_name, "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def run(env):
    def run(*args: str):
        return CliRunner().invoke(cli, list(args), env=env)

    run.env = env  # type: ignore[attr-defined]
    return run


@pytest.fixture
def limiter(endpoint_url, table_name):
    with SyncRateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url,
                         config_cache_seconds=0) as limiter:
        yield limiter


def test_disable_and_enable(run, limiter):
    rpm = [Limit.per_minute("rpm", 10)]
    result = run("entity", "disable", "k", "--resource", "gpt")
    assert result.exit_code == 0 and "disabled entity k on resource gpt" in result.output
    with pytest.raises(ResourceDisabled):
        with limiter.acquire("k", "gpt", rpm, consume={"rpm": 1}):
            pass
    assert run("entity", "enable", "k", "--resource", "gpt").exit_code == 0
    with limiter.acquire("k", "gpt", rpm, consume={"rpm": 1}):
        pass
    assert run("entity", "disable", "--resource", "gpt").exit_code == 0
    assert limiter.is_disabled(resource="gpt")
    nothing = run("entity", "disable")
    assert nothing.exit_code == 2 and "ENTITY_ID, --resource R" in nothing.output


def test_set_parent_reset_and_top_up(run, limiter):
    limiter.create_entity("org")
    limiter.create_entity("key")
    moved = run("entity", "set-parent", "key", "org", "--cascade")
    assert moved.exit_code == 0, moved.output
    assert limiter.get_entity("key").parent_id == "org" and limiter.get_entity("key").cascade
    cycle = run("entity", "set-parent", "org", "key")
    assert cycle.exit_code == 2 and "cycle" in cycle.output
    detached = run("entity", "set-parent", "key")
    assert detached.exit_code == 0 and limiter.get_entity("key").parent_id is None

    limiter.set_limits("key", [Limit.per_minute("tpm", 1_000)], resource="gpt")
    with limiter.acquire("key", "gpt", consume={"tpm": 900}):
        pass
    topped = run("entity", "top-up", "key", "gpt", "tpm=500")
    assert topped.exit_code == 0, topped.output
    left = float(topped.output.split("tpm:")[1].split()[0].replace(",", ""))
    assert 600 <= left < 700  # 1,000 - 900 + 500, and what refilled meanwhile (1,000 per minute)
    bad = run("entity", "top-up", "key", "gpt", "tpm")
    assert bad.exit_code == 2 and "NAME=AMOUNT" in bad.output
    assert run("entity", "reset", "key", "gpt").exit_code == 0
    assert limiter.available("key", "gpt")["tpm"] == pytest.approx(1_000)


def test_quotas_soft_limits_and_schedules_in_limits_set_and_get(run, limiter):
    stored = run("limits", "set", "soft rpm=100/min, budget=1000000 per month in Europe/Paris", "--entity", "k",
                 "--resource", "gpt", "--schedule", "0 9 * * MON-FRI=rpm=500/min", "--schedule", "0 18 * * MON-FRI=rpm=50/min")
    assert stored.exit_code == 0, stored.output
    assert limiter.get_schedule("k", "gpt") == [
        ("0 9 * * MON-FRI", [Limit.per_minute("rpm", 500)]),
        ("0 18 * * MON-FRI", [Limit.per_minute("rpm", 50)]),
    ]
    shown = CliRunner().invoke(cli, ["limits", "get", "--entity", "k", "--resource", "gpt"], env={**run.env, "COLUMNS": "200"})
    assert shown.exit_code == 0
    assert "quota per month (Europe/Paris)" in shown.output and "rate, soft" in shown.output
    assert "0 9 * * MON-FRI" in shown.output and "rpm=500/min" in shown.output
    bad = run("limits", "set", "rpm=1/min", "--resource", "gpt", "--schedule", "0 9 * *=rpm=2/min")
    assert bad.exit_code == 2 and "--schedule" in bad.output
    overlap = run("limits", "set", "rpm=1/min", "--resource", "gpt", "--schedule", "0 9 * * *=rpm=2/min",
                  "--schedule", "0 9 * * MON=rpm=3/min")
    assert overlap.exit_code == 2 and "same instant" in overlap.output
    assert limiter.get_resource_defaults("gpt") == []  # refused whole: nothing written


def test_usage_shows_quota_periods(run, limiter, endpoint_url):
    limiter.set_limits("k", [Limit.quota("daily", 10, every="day"), Limit.per_minute("rpm", 100)], resource="gpt")
    with limiter.acquire("k", "gpt", consume={"daily": 4, "rpm": 1}):
        pass
    result = run("usage", "--entity", "k", "--resource", "gpt", "--window", "hourly", "--aggregate", "--plot")
    assert result.exit_code == 0, result.output
    assert "Quota periods" in result.output
    row = next(line for line in result.output.splitlines() if line.strip().startswith("│ daily"))
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells[0] == "daily" and cells[1].startswith("day in UTC") and cells[2:5] == ["10", "4", "6"]


def test_the_console_script_disables_and_tops_up(env, limiter):
    script = Path(sys.executable).with_name("zae-limiter")
    full_env = {**os.environ, **env}
    done = subprocess.run([str(script), "entity", "disable", "scripted"], capture_output=True, text=True, env=full_env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert limiter.is_disabled(entity_id="scripted")
    missing = subprocess.run([str(script), "entity", "top-up", "scripted", "gpt", "tpm=1"], capture_output=True,
                             text=True, env=full_env, timeout=60)
    assert missing.returncode == 2 and "limits" in missing.stderr and "Traceback" not in missing.stderr
