"""lambda-export and program DIR: the Lambda zip holds an importable handler; the written project deploys
the component (run under Pulumi's mocks)."""

from __future__ import annotations

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
