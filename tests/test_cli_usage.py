"""`zae-limiter usage`: snapshots written by the aggregator from the table's real stream, as a table,
a plot and JSON."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from zae_limiter import Limit, SyncRateLimiter
from zae_limiter.cli import cli
from zae_limiter.cli.usage_command import parse_moment


@pytest.fixture
def run(endpoint_url, table_name):
    env = {"ZAE_LIMITER_ENDPOINT_URL": endpoint_url, "ZAE_LIMITER_TABLE": table_name, "AWS_DEFAULT_REGION": "us-east-1"}
    return lambda *args: CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture
def traffic(endpoint_url, table_name):
    limits = [Limit.per_minute("rpm", 100), Limit.per_minute("tpm", 100_000)]
    with SyncRateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url) as limiter:
        for tokens in (100, 250, 400):
            with limiter.acquire("acme", "gpt-4", limits, consume={"rpm": 1, "tpm": tokens}) as lease:
                lease.adjust(tpm=tokens)  # the call used twice its estimate
        with pytest.raises(RuntimeError):
            with limiter.acquire("acme", "gpt-4", limits, consume={"rpm": 1, "tpm": 999}):
                raise RuntimeError("refunded")


def test_usage_after_aggregating_the_stream(run, traffic):
    result = run("usage", "--entity", "acme", "--aggregate", "--plot")
    assert result.exit_code == 0, result.output
    assert "aggregated" in result.output
    assert "1,500" in result.output  # tpm: (100+250+400) * 2, the refunded call nets to zero
    assert "█" in result.output  # the plot
    as_json = json.loads(run("usage", "--resource", "gpt-4", "--json").output)
    assert as_json["totals"]["counters"] == {"rpm": 3, "tpm": 1500}
    assert as_json["totals"]["events"] == 4  # admitted acquires, the refunded one included
    daily = json.loads(run("usage", "--entity", "acme", "--window", "daily", "--json").output)
    assert daily["totals"]["counters"]["tpm"] == 1500


def test_usage_range_and_errors(run, traffic):
    run("usage", "--entity", "acme", "--aggregate")
    future = json.loads(run("usage", "--entity", "acme", "--since", "2999-01-01", "--json").output)
    assert future["snapshots"] == []
    recent = json.loads(run("usage", "--entity", "acme", "--since", "2h", "--json").output)
    assert recent["totals"]["counters"]["rpm"] == 3
    bad = run("usage", "--entity", "acme", "--since", "yesterday")
    assert bad.exit_code == 2 and "--since" in bad.output
    neither = run("usage")
    assert neither.exit_code == 2 and "--entity" in neither.output
    window = run("usage", "--entity", "acme", "--window", "weekly")
    assert window.exit_code == 2


def test_relative_and_absolute_moments():
    now = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
    assert parse_moment("90m", "--since", now) == now - timedelta(minutes=90)
    assert parse_moment("7d", "--since", now) == now - timedelta(days=7)
    assert parse_moment("2026-11-25T10:00", "--since", now) == datetime(2026, 11, 25, 10, tzinfo=timezone.utc)
    assert parse_moment("2026-11-25T10:00+02:00", "--since", now).utcoffset() == timedelta(hours=2)


def test_a_duration_too_far_back_is_a_usage_error(run):
    result = run("usage", "--entity", "acme", "--since", "999999999d")
    assert result.exit_code == 2 and "before year 1" in result.output
