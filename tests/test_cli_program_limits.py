"""`zae-limiter program DIR --limits FILE`: the written project applies the limits file with ZaeLimits,
beside the component (its program run under Pulumi's mocks), and a bad file writes nothing."""

from __future__ import annotations

import runpy

import pulumi
import yaml
from click.testing import CliRunner

from component_mocks import deploy
from test_limits_spec_file import SMALLEST
from zae_limiter import __version__
from zae_limiter.cli import cli


def test_the_project_wires_the_limits_file_into_zae_limits(tmp_path):
    source = tmp_path / "my-limits.yaml"
    source.write_text(SMALLEST)
    target = tmp_path / "infra"
    result = CliRunner().invoke(cli, ["program", str(target), "--table-name", "prod_limits", "--region", "eu-west-1",
                                      "--limits", str(source)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in target.iterdir()) == ["Pulumi.dev.yaml", "Pulumi.yaml", "__main__.py", "limits.yaml",
                                                        "requirements.txt"]
    assert (target / "limits.yaml").read_text() == SMALLEST
    assert (target / "requirements.txt").read_text() == f"zae-limiter[deploy,limits]=={__version__}\n"
    config = yaml.safe_load((target / "Pulumi.dev.yaml").read_text())["config"]
    project_config = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("zae-limiter:")}

    def program():
        pulumi.runtime.set_config("aws:region", config["aws:region"])  # the stack file's provider setting
        runpy.run_path(str(target / "__main__.py"))

    deployment = deploy(program, project_config)
    assert deployment.one("aws:dynamodb/table:Table").inputs["name"] == "prod_limits"
    items = {r.name: r.inputs for r in deployment.resources if r.type.startswith("pulumi-python:dynamic/zae-limiter:")}
    assert sorted(items) == ["zae-limiter-limits-entity-key-1", "zae-limiter-limits-entity-org-1",
                             "zae-limiter-limits-resource-gpt-4", "zae-limiter-limits-system"]
    assert {(i["table_name"], i["region"]) for i in items.values()} == {("prod_limits", "eu-west-1")}
    assert items["zae-limiter-limits-entity-org-1"]["spec"] == {"limits": {"gpt-4": "rpm=500/min"}}
    assert deployment.exports["table_name"] == "prod_limits"


def test_without_limits_the_project_is_unchanged(tmp_path):
    assert CliRunner().invoke(cli, ["program", str(tmp_path / "p")]).exit_code == 0
    assert "ZaeLimits" not in (tmp_path / "p" / "__main__.py").read_text()
    assert not (tmp_path / "p" / "limits.yaml").exists()


def test_a_bad_limits_file_writes_no_project(tmp_path):
    source = tmp_path / "bad.yaml"
    source.write_text(SMALLEST.replace("parent: org-1", "parent: org-1\n    colour: red"))
    result = CliRunner().invoke(cli, ["program", str(tmp_path / "infra"), "--limits", str(source)])
    assert result.exit_code == 2
    assert "--limits" in result.stderr and "entities.key-1.colour: unknown key" in result.stderr
    assert not (tmp_path / "infra").exists()
    missing = CliRunner().invoke(cli, ["program", str(tmp_path / "infra"), "--limits", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "--limits" in missing.stderr and not (tmp_path / "infra").exists()
