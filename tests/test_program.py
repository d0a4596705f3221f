"""One program, three entry points: `zae_limiter_program` (Automation API), `program_from_config`
(Pulumi.yaml) and the `main` Pulumi.yaml names, all under Pulumi's mocks."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import yaml

from component_mocks import deploy
from pulumi_component.program import EXPORTS, program_from_config, zae_limiter_program
from zae_limiter import StackOptions, ValidationError

ROOT = Path(__file__).resolve().parent.parent
TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"
VARIANTS = {
    "defaults": StackOptions(),
    "no-aggregator": StackOptions(enable_aggregator=False),
    "everything": StackOptions(
        snapshot_windows="hourly,daily,monthly",
        snapshot_retention_days=30,
        pitr_recovery_days=7,
        log_retention_days=30,
        lambda_memory_mb=512,
        lambda_timeout_s=90,
        enable_alarms=True,
        alarm_sns_topic_arn=TOPIC,
        permission_boundary="arn:aws:iam::123456789012:policy/boundary",
        role_name_prefix="team-",
        deletion_protection=True,
        tags={"team": "ml", "env": "prod"},
    ),
}


def config_of(table: str, options: StackOptions) -> dict[str, str]:
    """What `pulumi config set` (or the Automation API) stores for these options."""
    return {"tableName": table, **options.as_config()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_standalone_program_deploys_what_the_automation_program_deploys(variant):
    options = VARIANTS[variant]
    inline = deploy(lambda: zae_limiter_program("rate_limits", options))
    standalone = deploy(program_from_config, config=config_of("rate_limits", options))
    assert standalone.shape() == inline.shape()
    assert standalone.exports == inline.exports
    assert len(inline.resources) > 4


def test_configuration_changes_the_deployment():
    """The comparison above is not vacuous: different options give a different shape."""
    base = deploy(program_from_config, config=config_of("rate_limits", StackOptions()))
    changed = deploy(program_from_config, config=config_of("rate_limits", StackOptions(log_retention_days=30)))
    assert base.shape() != changed.shape()


def test_exports_always_have_every_key():
    deployment = deploy(lambda: zae_limiter_program("rate_limits", StackOptions()))
    assert tuple(deployment.exports) == EXPORTS
    assert deployment.exports["table_name"] == "rate_limits"
    assert deployment.exports["function_name"] == "rate_limits-aggregator"
    assert all(deployment.exports[key] for key in EXPORTS)
    without = deploy(lambda: zae_limiter_program("rate_limits", StackOptions(enable_aggregator=False)))
    assert tuple(without.exports) == EXPORTS
    assert [key for key, value in without.exports.items() if value is None] == [
        "function_name", "function_arn", "log_group_name",
    ]


def test_component_name_is_a_parameter():
    deployment = deploy(lambda: zae_limiter_program("rate_limits", StackOptions(), name="edge"))
    assert {r.name for r in deployment.resources if r.type == "zae-limiter:index:ZaeLimiter"} == {"edge"}


def test_config_set_with_path_gives_tags_as_json():
    # `pulumi config set --path tags.team ml` stores an object; Config.get returns it as JSON text.
    deployment = deploy(program_from_config, config={"tableName": "rate_limits", "tags": '{"team": "ml"}'})
    assert deployment.one("aws:dynamodb/table:Table").inputs["tags"] == {"team": "ml"}


def test_missing_table_name_says_how_to_set_it():
    with pytest.raises(ValidationError) as raised:
        deploy(program_from_config, config={"logRetentionDays": "30"})
    assert raised.value.field == "config tableName"
    assert "pulumi config set tableName" in str(raised.value)


@pytest.mark.parametrize(
    "key, value",
    [
        ("tableName", "x"),
        ("logRetentionDays", "13"),
        ("logRetentionDays", "two weeks"),
        ("enableAlarms", "maybe"),
        ("snapshotWindows", "weekly"),
        ("tags", "team=ml"),
    ],
)
def test_bad_config_names_the_config_key(key, value):
    config = {"tableName": "rate_limits", key: value}
    with pytest.raises(ValidationError) as raised:
        deploy(program_from_config, config=config)
    assert raised.value.field == f"config {key}"
    assert str(raised.value).startswith(f"config {key}: ")


def test_pulumi_yaml_runs_the_standalone_program():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "zae-limiter"  # the config namespace: `pulumi config set tableName` is zae-limiter:tableName
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"] == ".venv"
    main = ROOT / project["main"]
    assert (main / "__main__.py").is_file()

    options = VARIANTS["everything"]
    saved_path = list(sys.path)
    try:
        # What Pulumi's Python host does with a directory `main`: run its __main__.py as a script.
        from_yaml = deploy(lambda: runpy.run_path(str(main), run_name="__main__"), config=config_of("rate_limits", options))
    finally:
        sys.path[:] = saved_path
    inline = deploy(lambda: zae_limiter_program("rate_limits", options))
    assert from_yaml.shape() == inline.shape()
    assert from_yaml.exports == inline.exports
