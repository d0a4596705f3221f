"""`zae-limiter limits plan FILE` and `limits apply FILE` against the embedded server: in-process with
click's runner, and once as the installed console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from test_limits_spec_file import SMALLEST
from zae_limiter import Limit, SyncRateLimiter
from zae_limiter.core import schema
from zae_limiter.cli import cli


@pytest.fixture
def env(endpoint_url, table_name):
    return {"ZAE_LIMITER_ENDPOINT_URL": endpoint_url, "ZAE_LIMITER_TABLE": table_name, "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def run(env):
    def run(*args: str, input: str | None = None):
        return CliRunner().invoke(cli, ["limits", *args], env=env, input=input)

    return run


@pytest.fixture
def limiter(endpoint_url, table_name):
    with SyncRateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url,
                         config_cache_seconds=0) as limiter:
        yield limiter


@pytest.fixture
def smallest(tmp_path) -> Path:
    path = tmp_path / "limits.yaml"
    path.write_text(SMALLEST)
    return path


def table_keys(dynamodb, table_name) -> list[tuple[str, str]]:
    items = dynamodb.scan(TableName=table_name, ConsistentRead=True)["Items"]
    return sorted((item[schema.PK]["S"], item[schema.SK]["S"]) for item in items)


def test_plan_shows_the_creates_and_writes_nothing(run, smallest, dynamodb, table_name):
    result = run("plan", str(smallest))
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "+ create" in line]
    assert len(rows) == 6
    for target in ("system", "gpt-4", "org-1", "org-1 / gpt-4", "key-1", "key-1 / _default_"):
        assert any(target in row for row in rows), (target, result.stdout)
    assert "…" not in result.stdout  # a long limit text is folded onto more lines, never cut short
    assert "Plan: 6 to create, 0 to change, 0 to delete." in result.stdout
    assert table_keys(dynamodb, table_name) == []
    detailed = run("plan", str(smallest), "--detailed-exitcode")
    assert detailed.exit_code == 2 and "Plan: 6 to create" in detailed.stdout


def test_apply_then_apply_again_changes_nothing(run, smallest, limiter):
    result = run("apply", str(smallest))
    assert result.exit_code == 0, result.output
    assert "created entity key-1" in result.stdout and "Applied: 6 created, 0 changed, 0 deleted." in result.stdout
    assert limiter.get_resource_defaults("gpt-4") == [Limit.per_minute("rpm", 100), Limit.per_minute("tpm", 10_000, burst=50_000)]
    assert limiter.get_entity("key-1").parent_id == "org-1"
    again = run("apply", str(smallest))
    assert again.exit_code == 0 and again.stdout.startswith("No changes")
    for args in ((), ("--prune",), ("--detailed-exitcode",)):
        quiet = run("plan", str(smallest), *args)
        assert quiet.exit_code == 0 and quiet.stdout.startswith("No changes"), (args, quiet.output)


def test_prune_asks_before_deleting(run, smallest, tmp_path, limiter):
    assert run("apply", str(smallest)).exit_code == 0
    smaller = tmp_path / "smaller.yaml"
    smaller.write_text("entities:\n  org-1:\n    limits: {gpt-4: \"rpm=500/min\"}\n")
    planned = run("plan", str(smaller), "--prune")
    assert planned.exit_code == 0
    assert "Plan: 0 to create, 0 to change, 3 to delete." in planned.stdout
    key_row = [line for line in planned.stdout.splitlines() if "key-1" in line and "- delete" in line]
    assert len(key_row) == 1 and "with its stored" in key_row[0]  # its limits and buckets go with it
    refused = run("apply", str(smaller), "--prune", input="n\n")
    assert refused.exit_code == 1 and "Delete the 3 item(s) marked '- delete' above?" in refused.stderr
    assert limiter.get_entity("key-1").entity_id == "key-1" and limiter.get_system_defaults()  # nothing deleted
    # Without --prune nothing is deleted, so nothing is asked.
    assert run("apply", str(smaller)).stdout.startswith("No changes")
    accepted = run("apply", str(smaller), "--prune", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "deleted entity key-1" in accepted.stdout and "Applied: 0 created, 0 changed, 3 deleted." in accepted.stdout
    assert limiter.get_system_defaults() == [] and limiter.get_resource_defaults("gpt-4") == []
    assert limiter.get_children("org-1") == []
    assert run("apply", str(smallest), "--prune", "--yes").exit_code == 0  # --yes: nothing asked
    assert limiter.get_limits("key-1") == [Limit.per_minute("rpm", 50)]


BAD_FILES = [
    (SMALLEST.replace('_default_: "rpm=50/min"', 'gpt-4: "rpm=50/mn"'), "entities.key-1.limits.gpt-4", "unknown period 'mn'"),
    (SMALLEST.replace("parent: org-1", "parnt: org-1"), "entities.key-1.parnt", "unknown key"),
    (SMALLEST.replace('gpt-4: "rpm=100/min,tpm=10000/min:50000"',
                      'gpt-4: {limits: "rpm=100/min", schedule: [{cron: "0 9 * * *", limits: "rpm=1/s"}, '
                      '{cron: "0 9 * * 1-5", limits: "rpm=2/s"}]}'),
     "resources.gpt-4.schedule[1]", "fires at the same instant as entry 0"),
    (SMALLEST + "  org-1: {}\n", "line 11", "key 'org-1' appears twice"),
]


@pytest.mark.parametrize("text,where,message", BAD_FILES, ids=["limit text", "unknown key", "overlapping schedule", "duplicate"])
def test_a_bad_file_is_refused_whole_before_anything_is_written(run, tmp_path, text, where, message, dynamodb, table_name):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    for command in (("plan",), ("apply", "--yes"), ("apply", "--yes", "--prune")):
        result = run(*command, str(path))
        assert result.exit_code == 2, (command, result.output)
        assert where in result.stderr and message in result.stderr and result.stdout == ""
        assert "Traceback" not in result.output
    assert table_keys(dynamodb, table_name) == []
    detailed = run("plan", str(path), "--detailed-exitcode")  # 2 means "changes" there: an error is 1
    assert detailed.exit_code == 1 and where in detailed.stderr


def test_a_parent_missing_from_file_and_table_is_a_bad_file(run, tmp_path, dynamodb, table_name):
    path = tmp_path / "orphan.yaml"
    path.write_text("entities:\n  key-1: {parent: org-9}\n")
    result = run("apply", str(path), "--yes")
    assert result.exit_code == 2
    assert "entities.key-1.parent: entity 'org-9' is neither in this file nor in the table" in result.stderr
    assert table_keys(dynamodb, table_name) == []


def test_a_write_that_fails_stops_the_apply_and_says_what_was_and_was_not_applied(run, tmp_path, limiter):
    # One limits item over DynamoDB's 400 KB item size: the table refuses that write (a real refusal).
    huge = ",".join(f"l{i}=1/s" for i in range(8000))
    path = tmp_path / "huge.yaml"
    path.write_text(f'system: "rpm=1/s"\nentities:\n  a: {{}}\n  b: {{limits: {{gpt-4: "{huge}"}}}}\n  c: {{}}\n')
    result = run("apply", str(path))
    assert result.exit_code == 1, result.output
    assert "Error: create entity limits b / gpt-4 failed: " in result.stderr
    assert "exceeded the maximum allowed size" in result.stderr  # the item size DynamoDB refuses
    applied = result.stderr.split("Applied (3):\n")[1].split("Not applied (1):\n")
    assert applied[0].split() == "create system defaults system create entity a create entity b".split()
    assert applied[1].split() == "create entity c".split()
    assert limiter.get_system_defaults() == [Limit.per_second("rpm", 1)] and limiter.get_entity("b").entity_id == "b"
    assert limiter.get_limits("b", "gpt-4") == []
    assert "Traceback" not in result.output


def test_help_names_the_options(run):
    for command in ("plan", "apply"):
        result = run(command, "--help")
        assert result.exit_code == 0
        for option in ("--prune", "--table-name", "--region", "--endpoint-url"):
            assert option in result.stdout
    assert "--yes" in run("apply", "--help").stdout and "--detailed-exitcode" in run("plan", "--help").stdout


def test_the_console_script_applies_and_plans(smallest, env, limiter):
    script = shutil.which("zae-limiter", path=str(Path(sys.executable).parent))
    assert script, "the console script is installed next to the interpreter (pip install -e .)"
    full_env = {**os.environ, **env}
    applied = subprocess.run([script, "limits", "apply", str(smallest), "--yes"], capture_output=True, text=True,
                             env=full_env, timeout=120)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Applied: 6 created, 0 changed, 0 deleted." in applied.stdout
    planned = subprocess.run([script, "limits", "plan", str(smallest), "--detailed-exitcode"], capture_output=True,
                             text=True, env=full_env, timeout=120)
    assert planned.returncode == 0 and planned.stdout.startswith("No changes"), planned.stdout + planned.stderr
    assert limiter.get_limits("org-1", "gpt-4") == [Limit.per_minute("rpm", 500)]


def test_the_readmes_quota_file_plans_applies_and_prunes(run, tmp_path, limiter, monkeypatch):
    from test_limits_spec_file import readme_limits_files

    monkeypatch.setenv("COLUMNS", "250")  # rich folds cells to the terminal's width: a wide one keeps each row whole

    path = tmp_path / "quota.yaml"
    path.write_text(readme_limits_files()[1])  # the README's example of schedules, quotas, soft limits and flags
    planned = run("plan", str(path))
    assert planned.exit_code == 0, planned.output
    flat = " ".join(planned.stdout.split())
    for row in ("+ create │ disabled flag │ key-2", "+ create │ disabled flag │ key-1 / gpt-4", "at '0 9 * * MON-FRI': rpm=2000/min",
                "soft budget=50000000 per month"):
        assert row in flat, (row, planned.stdout)
    assert "embeddings" not in flat  # `disabled: false` and no flag in the table: nothing to do
    applied = run("apply", str(path))
    assert applied.exit_code == 0, applied.output
    assert "created disabled flag legacy-model (every entity)" in applied.stdout
    assert limiter.is_disabled("key-2") and limiter.is_disabled("key-1", "gpt-4") and limiter.is_disabled(resource="legacy-model")
    assert limiter.get_schedule() == [("0 18 * * MON-FRI", [Limit.per_minute("rpm", 1000)]), ("0 9 * * MON-FRI", [Limit.per_minute("rpm", 2000)])]
    assert run("plan", str(path), "--prune").stdout.startswith("No changes")
    # An operator's flag outside the file: left alone, then lifted by --prune (asked like a delete).
    limiter.disable("org-1")
    assert run("plan", str(path)).stdout.startswith("No changes")
    asked = run("apply", str(path), "--prune", input="n\n")
    assert asked.exit_code == 1 and "Delete the 1 item(s)" in asked.stderr and limiter.is_disabled("org-1")
    lifted = run("apply", str(path), "--prune", "--yes")
    assert lifted.exit_code == 0 and "deleted disabled flag org-1" in lifted.stdout and not limiter.is_disabled("org-1")
