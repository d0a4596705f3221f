"""The Automation API layer: what we hand the engine, checked through a recording PulumiCommand."""

from __future__ import annotations

import os

import pytest

from recording_pulumi import RecordingPulumiCommand
from zae_limiter import StackError, StackOptions, ValidationError
from zae_limiter import stack as stack_module
from zae_limiter.stack import EMULATED_SERVICES, INSTALL_HINT, StackManager, stack_config


@pytest.fixture
def engine() -> RecordingPulumiCommand:
    return RecordingPulumiCommand()


@pytest.fixture
def make(engine, tmp_path):
    def make(**kwargs):
        kwargs.setdefault("table_name", "rate_limits")
        kwargs.setdefault("region", "us-east-1")
        kwargs.setdefault("backend_url", f"file://{tmp_path}/state")
        kwargs.setdefault("work_dir", tmp_path / "work")
        return StackManager(pulumi_command=engine, **kwargs)

    return make


def test_stack_config_for_aws_and_for_an_emulator():
    options = StackOptions(enable_aggregator=False, pitr_recovery_days=7, tags={"team": "ml"})
    config = stack_config("rate_limits", "eu-west-1", options)
    assert config["aws:region"] == "eu-west-1"
    assert config["zae-limiter:tableName"] == "rate_limits"
    assert config["zae-limiter:enableAggregator"] == "false"
    assert config["zae-limiter:pitrRecoveryDays"] == "7"
    assert config["zae-limiter:tags"] == '{"team": "ml"}'
    assert not any(key.startswith("aws:endpoints") or key.startswith("aws:skip") for key in config)
    emulated = stack_config("rate_limits", "us-east-1", options, "http://127.0.0.1:4566")
    for service in ("dynamodb", "lambda", "iam", "logs", "cloudwatch", "sns", "sts", "sqs"):
        assert emulated[f"aws:endpoints[0].{service}"] == "http://127.0.0.1:4566"
    assert set(EMULATED_SERVICES) == {"dynamodb", "lambda", "iam", "logs", "cloudwatch", "sns", "sts", "sqs"}
    assert emulated["aws:skipCredentialsValidation"] == "true"
    assert emulated["aws:skipRequestingAccountId"] == "true"
    assert emulated["aws:skipMetadataApiCheck"] == "true"


def test_deploy_creates_configures_and_runs_up(make, engine, tmp_path):
    events = []
    outputs = make(endpoint_url="http://127.0.0.1:4566", options=StackOptions(log_retention_days=90)).deploy(on_event=events.append)
    assert engine.verbs() == [
        "stack select",  # not there yet...
        "stack init",  # ...so it is created
        "config set-all",
        "up",
        "stack output",
        "stack output",
        "stack history",
    ]
    init = engine.call("stack init")
    assert init.args[:3] == ["stack", "init", "zae-limiter-rate_limits"]
    config_call = engine.call("config set-all")
    assert "--path" in config_call.args
    config = engine.config["zae-limiter-rate_limits"]
    assert config == stack_config("rate_limits", "us-east-1", StackOptions(log_retention_days=90), "http://127.0.0.1:4566")
    up = engine.call("up")
    assert {"--yes", "--skip-preview"} <= set(up.args)
    assert up.args[up.args.index("--exec-kind") + 1] == "auto.inline"  # our program, run in this process
    assert any(arg.startswith("--client=127.0.0.1:") for arg in up.args)
    assert up.env["PULUMI_CONFIG_PASSPHRASE"] == os.environ.get("PULUMI_CONFIG_PASSPHRASE", "")
    assert up.env["AWS_ACCESS_KEY_ID"] == os.environ.get("AWS_ACCESS_KEY_ID") or up.env["AWS_ACCESS_KEY_ID"] == "test"
    assert up.cwd == str(tmp_path / "work")
    assert (tmp_path / "state").is_dir()  # the file backend's directory is created
    project = (tmp_path / "work" / "Pulumi.yaml").read_text()
    assert "name: zae-limiter" in project and f"file://{tmp_path}/state" in project
    assert outputs == engine.deployed_outputs
    assert [e.resource_pre_event.metadata.type for e in events if e.resource_pre_event][:2] == [
        "zae-limiter:index:ZaeLimiter",
        "aws:dynamodb/table:Table",
    ]


def test_a_second_deploy_selects_the_existing_stack(make, engine):
    make().deploy()
    engine.calls.clear()
    make().deploy()
    assert engine.verbs()[:2] == ["stack select", "config set-all"]


def test_status_outputs_and_destroy_with_removal(make, engine):
    manager = make()
    manager.deploy()
    state = manager.status()
    assert state.stack_name == "zae-limiter-rate_limits"
    assert state.last_result == "succeeded" and state.last_update is not None
    assert state.resource_count == 5
    assert state.outputs == engine.deployed_outputs
    assert manager.outputs() == engine.deployed_outputs
    engine.calls.clear()
    manager.destroy()
    assert engine.verbs() == ["stack select", "destroy", "stack history", "stack rm"]
    assert engine.call("destroy").args[:3] == ["destroy", "--skip-preview", "--yes"]
    assert "zae-limiter-rate_limits" not in engine.stacks


def test_status_of_a_missing_stack_is_a_stack_error(make):
    with pytest.raises(StackError, match="stack 'zae-limiter-rate_limits' not found"):
        make().status()


def test_engine_failures_carry_the_engines_message(make, engine):
    engine.fail["up"] = "error: creating DynamoDB Table (rate_limits): AccessDeniedException: not authorized"
    with pytest.raises(StackError, match="AccessDeniedException: not authorized"):
        make().deploy()


def test_partial_destroy_says_the_table_may_remain(make, engine):
    manager = make()
    manager.deploy()
    engine.fail["destroy"] = "error: deleting table: ResourceInUseException"
    with pytest.raises(StackError, match="only partly destroyed") as raised:
        manager.destroy()
    assert "ResourceInUseException" in str(raised.value)
    assert "zae-limiter-rate_limits" in engine.stacks  # kept, so running delete again finishes


def test_preview_collects_steps_and_changes(make, engine):
    summary = make().preview()
    assert summary.changes == {"create": 3}
    assert ("create", "aws:dynamodb/table:Table", "zae-limiter-table") in summary.steps


def test_missing_pulumi_cli_is_a_clear_stack_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing called pulumi here
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "nowhere"))
    manager = StackManager(table_name="tbl", region="us-east-1", backend_url=f"file://{tmp_path}", work_dir=tmp_path)
    with pytest.raises(StackError) as raised:
        manager.deploy()
    assert str(raised.value) == INSTALL_HINT
    assert "get.pulumi.com" in str(raised.value)
    assert not isinstance(raised.value, FileNotFoundError)


def test_names_and_settings_are_validated():
    with pytest.raises(ValidationError, match="stack_name"):
        StackManager(stack_name="bad name!", pulumi_command=object())
    with pytest.raises(ValidationError, match="stack_name"):
        StackManager(pulumi_command=object())
    with pytest.raises(ValidationError, match="endpoint_url"):
        StackManager(table_name="tbl", endpoint_url="localhost:4566", pulumi_command=object())
    assert StackManager(table_name="tbl", pulumi_command=object()).stack_name == "zae-limiter-tbl"


def test_default_backend_is_a_local_file_backend(monkeypatch):
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    assert stack_module.default_backend_url().endswith("/.zae-limiter/pulumi")
    assert stack_module.default_backend_url().startswith("file://")
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://my-state")
    assert stack_module.default_backend_url() == "s3://my-state"


def test_the_inline_program_builds_the_component_from_the_config_we_set():
    """The Automation API runs `program_from_config` with the configuration `stack_config` sets."""
    from component_mocks import PROJECT, deploy
    from pulumi_component.program import program_from_config

    options = StackOptions(enable_aggregator=False, deletion_protection=True)
    config = stack_config("inline_t", "us-east-1", options)
    project_config = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith(f"{PROJECT}:")}
    deployment = deploy(program_from_config, project_config)
    table = deployment.one("aws:dynamodb/table:Table")
    assert table.inputs["name"] == "inline_t"
    assert table.inputs["deletionProtectionEnabled"] is True
    assert deployment.of_type("aws:lambda/function:Function") == []
    assert deployment.exports["table_name"] == "inline_t"
