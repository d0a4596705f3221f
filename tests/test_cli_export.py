"""lambda-export and program DIR: the Lambda zip holds an importable handler; the written project deploys
the component (run under Pulumi's mocks)."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml
from click.testing import CliRunner

from component_mocks import deploy
from zae_limiter.cli import cli


def test_lambda_export_writes_an_importable_handler(tmp_path):
    output = tmp_path / "out" / "lambda.zip"
    result = CliRunner().invoke(cli, ["lambda-export", "--output", str(output)])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(output) as archive:
        names = archive.namelist()
        assert "aggregator/handler.py" in names
        assert not any("__pycache__" in n or n.endswith(".pyc") or "/tests/" in n for n in names)
        archive.extractall(tmp_path / "unpacked")
    # Import the handler from the archive alone (plus boto3, which the Lambda runtime provides).
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import aggregator.handler as h, zae_limiter;"
        "assert zae_limiter.__file__.startswith(sys.argv[1]), zae_limiter.__file__;"
        "assert callable(h.handler); print('ok')"
    )
    ran = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "unpacked")], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert ran.returncode == 0 and ran.stdout.strip() == "ok", ran.stderr


def test_program_writes_a_project_that_deploys_the_component(tmp_path):
    target = tmp_path / "infra"
    result = CliRunner().invoke(cli, ["program", str(target), "--table-name", "prod_limits", "--region", "eu-west-1",
                                      "--pitr-recovery-days", "7", "--tag", "team=ml"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in target.iterdir()) == ["Pulumi.dev.yaml", "Pulumi.yaml", "__main__.py", "requirements.txt"]
    project = yaml.safe_load((target / "Pulumi.yaml").read_text())
    assert project["name"] == "zae-limiter" and project["runtime"]["name"] == "python"
    config = yaml.safe_load((target / "Pulumi.dev.yaml").read_text())["config"]
    assert config["aws:region"] == "eu-west-1" and config["zae-limiter:pitrRecoveryDays"] == "7"
    project_config = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("zae-limiter:")}
    deployment = deploy(lambda: runpy.run_path(str(target / "__main__.py")), project_config)
    table = deployment.one("aws:dynamodb/table:Table")
    assert table.inputs["name"] == "prod_limits"
    assert table.inputs["pointInTimeRecovery"]["enabled"] is True
    assert table.inputs["tags"]["team"] == "ml"
    assert deployment.exports["table_name"] == "prod_limits"


def test_program_refuses_to_overwrite_without_force(tmp_path):
    runner = CliRunner()
    assert runner.invoke(cli, ["program", str(tmp_path)]).exit_code == 0
    again = runner.invoke(cli, ["program", str(tmp_path)])
    assert again.exit_code == 2 and "--force" in again.output
    assert runner.invoke(cli, ["program", str(tmp_path), "--force", "--table-name", "other"]).exit_code == 0
    assert "other" in (tmp_path / "Pulumi.dev.yaml").read_text()


def test_program_errors_are_clean(tmp_path):
    runner = CliRunner()
    bad_stack = runner.invoke(cli, ["program", str(tmp_path / "p"), "--stack", "no spaces"])
    assert bad_stack.exit_code == 2 and "'--stack'" in bad_stack.output and "stack_name" not in bad_stack.output
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    result = runner.invoke(cli, ["program", str(blocked / "sub")])
    assert result.exit_code == 1 and "cannot write the project" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_lambda_export_needs_no_pulumi_sdk(tmp_path):
    """The zip builder must work where only the runtime is installed: block pulumi's import."""
    probe = (
        "import sys; sys.modules['pulumi'] = None; "
        "from click.testing import CliRunner; from zae_limiter.cli import cli; "
        f"r = CliRunner().invoke(cli, ['lambda-export', '--output', {str(tmp_path / 'l.zip')!r}]); "
        "print(r.exit_code, r.output)"
    )
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert ran.stdout.startswith("0 wrote"), ran.stdout + ran.stderr


def test_stack_commands_without_the_pulumi_sdk_say_how_to_install_it(tmp_path):
    probe = (
        "import sys; sys.modules['pulumi'] = None; sys.modules['pulumi.automation'] = None; "
        "from click.testing import CliRunner; from zae_limiter.cli import cli; "
        "r = CliRunner().invoke(cli, ['status', '--stack-name', 'x']); print(r.exit_code, r.output)"
    )
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HOME": str(tmp_path)})
    assert ran.stdout.startswith("1 "), ran.stdout + ran.stderr
    assert "zae-limiter[deploy]" in ran.stdout and "Traceback" not in ran.stdout + ran.stderr
