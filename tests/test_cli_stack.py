"""The stack commands through click's runner with a recording engine, and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from recording_pulumi import RecordingPulumiCommand
from zae_limiter.cli import cli
from zae_limiter.stack import stack_config
from zae_limiter import StackOptions


@pytest.fixture
def engine():
    return RecordingPulumiCommand()


@pytest.fixture
def run(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # workspaces and the default backend go under a throwaway home
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)

    def run(*args: str, input: str | None = None):
        return CliRunner().invoke(cli, list(args), obj={"pulumi_command": engine}, input=input)

    return run


def test_deploy_with_the_guides_options(run, engine, tmp_path):
    result = run(
        "deploy", "--table-name", "rate_limits", "--region", "us-east-1",
        "--log-retention-days", "90", "--pitr-recovery-days", "7",
        "--enable-alarms", "--alarm-sns-topic", "arn:aws:sns:us-east-1:123456789012:alerts",
        "--no-aggregator", "--tag", "team=ml",
    )
    assert result.exit_code == 0, result.output
    assert "Deploying stack zae-limiter-rate_limits" in result.output
    assert "table_arn" in result.output  # the outputs summary
    assert "aws:dynamodb/table:Table" in result.output  # the progress table, from engine events
    expected = StackOptions(
        log_retention_days=90, pitr_recovery_days=7, enable_alarms=True,
        alarm_sns_topic_arn="arn:aws:sns:us-east-1:123456789012:alerts", enable_aggregator=False, tags={"team": "ml"},
    )
    assert engine.config["zae-limiter-rate_limits"] == stack_config("rate_limits", "us-east-1", expected)
    # The default backend: a local file backend under the user's home, created on first use.
    assert (tmp_path / ".zae-limiter" / "pulumi").is_dir()
    project = Path(engine.call("up").cwd, "Pulumi.yaml").read_text()
    assert f"file://{tmp_path}/.zae-limiter/pulumi" in project


def test_deploy_to_an_emulator_with_a_custom_stack_and_backend(run, engine, tmp_path):
    result = run(
        "deploy", "--table-name", "tbl", "--region", "us-east-1", "--stack-name", "dev",
        "--endpoint-url", "http://127.0.0.1:4566", "--backend-url", f"file://{tmp_path}/state",
    )
    assert result.exit_code == 0, result.output
    config = engine.config["dev"]
    assert config["aws:endpoints[0].lambda"] == "http://127.0.0.1:4566"
    project = Path(engine.call("up").cwd, "Pulumi.yaml").read_text()
    assert f"file://{tmp_path}/state" in project


def test_status_outputs_and_delete(run, engine):
    assert run("deploy", "--table-name", "rate_limits", "--region", "us-east-1").exit_code == 0
    result = run("status", "--stack-name", "zae-limiter-rate_limits", "--region", "us-east-1")
    assert result.exit_code == 0, result.output
    for text in ("zae-limiter-rate_limits", "succeeded", "resources", "table_arn"):
        assert text in result.output
    as_json = json.loads(run("status", "--table-name", "rate_limits", "--json").output)
    assert as_json["resource_count"] == 5 and as_json["outputs"]["table_name"] == "rate_limits"
    assert json.loads(run("outputs", "--table-name", "rate_limits", "--json").output) == engine.deployed_outputs
    refused = run("delete", "--stack-name", "zae-limiter-rate_limits", "--region", "us-east-1", input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    assert "destroy" not in engine.verbs()
    result = run("delete", "--stack-name", "zae-limiter-rate_limits", "--region", "us-east-1", "--yes")
    assert result.exit_code == 0, result.output
    assert engine.verbs()[-2:] == ["stack history", "stack rm"] and "destroy" in engine.verbs()
    assert run("status", "--stack-name", "zae-limiter-rate_limits").exit_code == 1


def test_confirmed_delete(run, engine):
    run("deploy", "--table-name", "tbl", "--region", "us-east-1")
    result = run("delete", "--table-name", "tbl", input="y\n")
    assert result.exit_code == 0 and "deleted" in result.output
    assert "zae-limiter-tbl" not in engine.stacks


def test_preview_shows_the_diff(run, engine):
    result = run("preview", "--table-name", "tbl", "--region", "us-east-1")
    assert result.exit_code == 0, result.output
    assert "create" in result.output and "zae-limiter-table" in result.output
    assert "changes: create 3" in result.output


def test_engine_failure_exits_1_with_the_engines_message(run, engine):
    engine.fail["up"] = "error: creating Lambda Function: InvalidParameterValueException: bad role"
    result = run("deploy", "--table-name", "tbl", "--region", "us-east-1")
    assert result.exit_code == 1
    assert "InvalidParameterValueException: bad role" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args, needle",
    [
        (["deploy", "--region", "us-east-1"], "--table-name"),
        (["deploy", "--table-name", "tbl", "--region", "us-east-1", "--log-retention-days", "13"], "--log-retention-days"),
        (["deploy", "--table-name", "tbl", "--region", "us-east-1", "--pitr-recovery-days", "40"], "--pitr-recovery-days"),
        (["deploy", "--table-name", "tbl", "--region", "us-east-1", "--alarm-sns-topic", "arn:aws:sns:us-east-1:123456789012:x"], "--alarm-sns-topic"),
        (["deploy", "--table-name", "tbl", "--region", "us-east-1", "--tag", "novalue"], "--tag"),
        (["deploy", "--table-name", "tbl", "--region", "us-east-1", "--snapshot-windows", "weekly"], "--snapshot-windows"),
        (["deploy", "--table-name", "bad#name", "--region", "us-east-1"], "--table-name"),
        (["deploy", "--table-name", "tbl", "--region", "us-east-1", "--endpoint-url", "nohost"], "--endpoint-url"),
        (["status"], "--stack-name"),
        (["delete", "--stack-name", "no spaces"], "--stack-name"),
    ],
)
def test_bad_options_exit_2_with_usage(run, engine, args, needle):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.output and needle in result.output
    assert "up" not in engine.verbs()


def _cli_path() -> str:
    return str(Path(sys.executable).with_name("zae-limiter"))


def test_every_stack_command_without_pulumi_exits_1_with_install_hint(tmp_path):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "PULUMI_HOME": str(tmp_path / "p")}
    for args in (
        ["deploy", "--table-name", "tbl", "--region", "us-east-1"],
        ["preview", "--table-name", "tbl", "--region", "us-east-1"],
        ["status", "--stack-name", "zae-limiter-tbl"],
        ["outputs", "--table-name", "tbl"],
        ["delete", "--stack-name", "zae-limiter-tbl", "--yes"],
    ):
        result = subprocess.run([_cli_path(), *args], capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert "Pulumi CLI is not installed" in result.stderr and "get.pulumi.com" in result.stderr
        assert "Traceback" not in result.stderr + result.stdout


def test_bad_option_as_a_subprocess_exits_2():
    result = subprocess.run([_cli_path(), "deploy", "--table-name", "tbl"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "AWS_REGION": "", "AWS_DEFAULT_REGION": ""})
    assert result.returncode == 2
    assert "Missing option '--region'" in result.stderr
