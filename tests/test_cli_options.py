"""Every option of every runtime command, given a bad value, exits 2 with a message that names the option as
the user typed it (`--entity`, `ENTITY_ID`), never the library's parameter (`entity_id`); so does every option of
the infrastructure commands (deploy, preview, program, cfn-template, status, delete, outputs, local). Table names are
checked by every command with DynamoDB's rule (as cfn-template always did), region names for their shape
(the CLI's --region, the limiters' region= and StackManager alike), and an SNS topic ARN that is refused
says which part is wrong."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import botocore.session
import pytest
from click.testing import CliRunner

from zae_limiter import StackOptions, SyncRateLimiter, ValidationError
from zae_limiter.cli import cli
from zae_limiter.stack import StackManager, check_backend_url
from zae_limiter.core.validation import check_region

# A bad value for each parameter, by the parameter's (Python) name; flags have none.
BAD_VALUES = {
    "entity_id": "bad#id",
    "parent_id": "p#x",
    "resource": "r#x",
    "name": "n" * 300,
    "meta": "k" * 300 + "=v",
    "table_name": "a b",
    "region": "us_east_1",
    "endpoint_url": "ftp://127.0.0.1:1",
    "spec": "rpm=x/min",
    "window": "weekly",
    "since": "yesterday",
    "until": "yesterday",
    "schedule": "0 9 * * MON-FRI=rpm=x/min",
    "amounts": "rpm=x",
    "file": "/nonexistent/limits.yaml",
}
# What an argument needs beside the one under test (before it: arguments are positional).
GOOD_VALUES = {"entity_id": "k", "parent_id": "p", "resource": "api", "spec": "rpm=1/min", "amounts": "rpm=1"}
RUNTIME_COMMANDS = [
    ("entity", "create"), ("entity", "show"), ("entity", "children"), ("entity", "delete"),
    ("entity", "disable"), ("entity", "enable"), ("entity", "set-parent"), ("entity", "reset"), ("entity", "top-up"),
    ("limits", "set"), ("limits", "get"), ("limits", "delete"), ("limits", "plan"), ("limits", "apply"),
    ("available",), ("usage",),
]
SCRIPT = str(Path(sys.executable).with_name("zae-limiter"))
LIBRARY_NAMES = ("entity_id", "parent_id", "table_name", "endpoint_url", "metadata")


def command_of(path: tuple[str, ...]):
    command = cli
    for name in path:
        command = command.commands[name]
    return command


def cases():
    for path in RUNTIME_COMMANDS:
        for param in command_of(path).params:
            if getattr(param, "is_flag", False) or param.name == "help":
                continue
            yield pytest.param(path, param.name, id=f"{' '.join(path)}:{param.opts[0]}")


@pytest.mark.parametrize("path, name", list(cases()))
def test_every_runtime_option_with_a_bad_value_is_named_as_typed(path, name, endpoint_url, table_name, tmp_path):
    assert name in BAD_VALUES, f"no bad value to try for {name} of {' '.join(path)}"
    command = command_of(path)
    args: list[str] = list(path)
    good = dict(GOOD_VALUES, file=str(tmp_path / "limits.yaml"))
    (tmp_path / "limits.yaml").write_text("entities:\n  k:\n    limits: {api: \"rpm=1/min\"}\n")
    for param in command.params:
        if param.param_type_name == "argument":
            args.append(BAD_VALUES[name] if param.name == name else good[param.name])
    (param,) = [p for p in command.params if p.name == name]
    if param.param_type_name == "option":
        args += [param.opts[0], BAD_VALUES[name]]
    if path[0] == "limits" and path[1] not in ("plan", "apply") and name not in ("entity_id", "resource"):
        args += ["--entity", "k"]  # whose limits: otherwise that is the usage error
    if path == ("usage",) and name not in ("entity_id", "resource"):
        args += ["--entity", "k"]
    if path == ("entity", "delete"):
        args.append("--yes")
    env = {"ZAE_LIMITER_ENDPOINT_URL": endpoint_url, "ZAE_LIMITER_TABLE": table_name, "AWS_DEFAULT_REGION": "us-east-1"}
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 2, (args, result.output)
    shown = param.opts[0] if param.param_type_name == "option" else param.human_readable_name.strip("[].")
    assert re.search(f"Invalid value for '?\\[?{re.escape(shown)}(\\.\\.\\.)?\\]?'?[: ]", result.output), result.output
    for library_name in LIBRARY_NAMES:
        assert library_name not in result.output, result.output
    assert "Traceback" not in result.output


# -- the infrastructure commands -------------------------------------------------------------------
# A bad value for each option of the commands that deploy, describe or write the infrastructure.
BAD_DEPLOY_VALUES = {
    "table_name": "a b", "region": "us_east_1", "stack_name": "a/b", "endpoint_url": "ftp://127.0.0.1:1",
    "backend_url": "ftp://example.com/state", "log_retention_days": "13", "pitr_recovery_days": "36",
    "alarm_sns_topic": "nonsense", "snapshot_windows": "weekly", "snapshot_retention_days": "0",
    "lambda_memory": "64", "lambda_timeout": "0", "permission_boundary": "not-an-arn",
    "role_name_prefix": "bad prefix!", "tags": "no-value", "project_name": "bad name!", "stack": "no spaces",
    "limits_file": "/nonexistent/limits.yaml", "port": "70000",
}
# Where the value is a path the command writes (an I/O failure, exit 1: test_cli_export.py).
WRITTEN_PATHS = {"directory", "output"}
INFRA_COMMANDS = ["deploy", "preview", "program", "cfn-template", "status", "delete", "outputs", "local"]
# What a command needs beside the option under test, so that the bad value is the only thing wrong.
INFRA_NEEDS = {
    "deploy": ["--table-name", "rate_limits", "--region", "us-east-1"],
    "preview": ["--table-name", "rate_limits", "--region", "us-east-1"],
    "status": ["--table-name", "rate_limits", "--region", "us-east-1"],
    "delete": ["--table-name", "rate_limits", "--region", "us-east-1", "--yes"],
    "outputs": ["--table-name", "rate_limits", "--region", "us-east-1"],
}


def infra_cases():
    for name in INFRA_COMMANDS:
        for param in cli.commands[name].params:
            if getattr(param, "is_flag", False) or param.name == "help" or param.name in WRITTEN_PATHS:
                continue
            yield pytest.param(name, param.name, id=f"{name}:{param.opts[0]}")


@pytest.mark.parametrize("command_name, name", list(infra_cases()))
def test_every_infrastructure_option_with_a_bad_value_is_named_as_typed(command_name, name, tmp_path):
    """Before: `program --stack 'no spaces'` said `stack_name: ...` (the library's parameter), and
    `--backend-url` and `--project-name` took anything, for the engine to refuse after the work began."""
    assert name in BAD_DEPLOY_VALUES, f"no bad value to try for {name} of {command_name}"
    (param,) = [p for p in cli.commands[command_name].params if p.name == name]
    args = [command_name, *INFRA_NEEDS.get(command_name, [])]
    if command_name == "program":
        args.append(str(tmp_path / "infra"))
    shown = param.opts[0]
    args += [shown, BAD_DEPLOY_VALUES[name]]
    env = {"ZAE_LIMITER_TABLE": None, "ZAE_LIMITER_ENDPOINT_URL": None, "PULUMI_BACKEND_URL": None,
           "HOME": str(tmp_path)}  # nothing written under the user's home, had the check been missed
    if command_name == "local":  # a subprocess: an accepted value would serve until interrupted
        ran = subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=60,
                             env={key: value for key, value in os.environ.items() if key not in env} | {"HOME": str(tmp_path)})
        exit_code, output = ran.returncode, ran.stderr
    else:
        result = CliRunner().invoke(cli, args, env=env)
        exit_code, output = result.exit_code, result.output
    assert exit_code == 2, (args, output)
    assert re.search(f"Invalid value for '?{re.escape(shown)}'?[: ]", output), output
    if "_" in name:  # a library parameter spelled otherwise than its option (stack_name, snapshot_windows)
        assert name not in output, output
    assert "Traceback" not in output
    assert not (tmp_path / "infra").exists()


@pytest.mark.parametrize("url", ["file:///tmp/state", "file://~", "s3://bucket/prefix", "azblob://container",
                                 "gs://bucket", "postgres://user@db/pulumi", "https://api.pulumi.com",
                                 "http://pulumi.internal:8080"])
def test_every_backend_pulumi_login_takes_is_accepted(url):
    assert check_backend_url(url) == url
    assert StackManager(table_name="rate_limits", backend_url=url, pulumi_command=object()).backend_url == url


@pytest.mark.parametrize("url", ["ftp://host/x", "s3:/bucket", "bucket", "file://", "s3://  "])
def test_a_backend_url_pulumi_would_refuse_is_refused_by_name(url):
    with pytest.raises(ValidationError, match="Pulumi backend URL") as raised:
        StackManager(table_name="rate_limits", backend_url=url, pulumi_command=object())
    assert raised.value.field == "backend_url"
    with pytest.raises(ValidationError) as at_construction:  # the limiter checks it up front, not when entering
        SyncRateLimiter(table_name="rate_limits", region="us-east-1", endpoint_url="http://127.0.0.1:1",
                        backend_url=url)
    assert at_construction.value.field == "backend_url"


def test_a_range_whose_end_is_before_its_start_names_until(endpoint_url, table_name):
    env = {"ZAE_LIMITER_ENDPOINT_URL": endpoint_url, "ZAE_LIMITER_TABLE": table_name, "AWS_DEFAULT_REGION": "us-east-1"}
    result = CliRunner().invoke(cli, ["usage", "--entity", "k", "--since", "2h", "--until", "3h"], env=env)
    assert result.exit_code == 2 and "'--until'" in result.output and "must not be before" in result.output


# -- table names ------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["deploy", "preview", "program", "cfn-template", "local"])
@pytest.mark.parametrize("bad", ["ab", "a b", "t#1", "x" * 256])
def test_every_command_refuses_the_table_names_dynamodb_refuses(command, bad, tmp_path):
    """Before: deploy, preview and program accepted what cfn-template refused (and deployed, or wrote a
    project, with a table name AWS then refused)."""
    args = [command, "--table-name", bad]
    if command in ("deploy", "preview"):
        args += ["--region", "us-east-1"]
    if command == "program":
        args.append(str(tmp_path / "infra"))
    if command == "local":  # a subprocess: an accepted name would serve until interrupted
        ran = subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=60)
        exit_code, output = ran.returncode, ran.stderr
    else:
        result = CliRunner().invoke(cli, args)
        exit_code, output = result.exit_code, result.output
    assert exit_code == 2, output
    assert "'--table-name'" in output and "DynamoDB's rule" in output
    assert not (tmp_path / "infra").exists()


def test_stack_manager_uses_the_same_rule():
    with pytest.raises(ValidationError, match="DynamoDB's rule") as raised:
        StackManager(table_name="ab", pulumi_command=object())
    assert raised.value.field == "table_name"


# -- regions ----------------------------------------------------------------------------------------
def test_every_region_botocore_knows_has_the_shape():
    data = botocore.session.get_session().get_data("endpoints")
    regions = {region for partition in data["partitions"] for region in partition["regions"]}
    assert len(regions) > 30
    for region in regions:
        check_region("region", region)


@pytest.mark.parametrize("bad", ["us_east_1", "US-EAST-1", "useast1", "us-east", "us-east-1 ", "", "http://x"])
def test_a_region_without_the_shape_is_refused_everywhere(bad):
    with pytest.raises(ValidationError) as raised:
        SyncRateLimiter(table_name="tbl", region=bad)
    assert raised.value.field == "region"
    if bad:
        with pytest.raises(ValidationError):
            StackManager(table_name="tbl", region=bad, pulumi_command=object())
        result = CliRunner().invoke(cli, ["deploy", "--table-name", "tbl", "--region", bad])
        assert result.exit_code == 2 and "'--region'" in result.output, result.output


# -- the alarm topic --------------------------------------------------------------------------------
# The deployment guide's alarm example: its account id has 9 digits.
GUIDE_EXAMPLE = "arn:aws:sns:us-east-1:123456789:alerts"


def test_the_guides_alarm_example_is_refused_with_the_reason():
    result = CliRunner().invoke(cli, ["deploy", "--table-name", "rate_limits", "--region", "us-east-1", "--enable-alarms",
                                      "--alarm-sns-topic", GUIDE_EXAMPLE])
    assert result.exit_code == 2
    assert "'--alarm-sns-topic'" in result.output
    assert re.search(r"account id '123456789' \(9 characters\): an AWS account id is 12 digits", result.output), result.output


@pytest.mark.parametrize(
    "arn, reason",
    [
        ("alerts", "must be an ARN of the form arn:aws:sns:REGION:ACCOUNT:TOPIC"),
        ("arn:aws:sqs:us-east-1:123456789012:alerts", "is an ARN of 'sqs', not 'sns'"),
        ("arn:aws:sns:east:123456789012:alerts", "has region 'east'"),
        ("arn:amazon:sns:us-east-1:123456789012:alerts", "has partition 'amazon'"),
        ("arn:aws:sns:us-east-1:12345678901a:alerts", "an AWS account id is 12 digits"),
        ("arn:aws:sns:us-east-1:123456789012:a/b", "a topic name is 1 to 256 letters"),
        ("arn:aws:sns:us-east-1:123456789012:" + "t" * 257, "a topic name is 1 to 256 letters"),
    ],
)
def test_a_bad_topic_arn_says_which_part_is_wrong(arn, reason):
    with pytest.raises(ValidationError) as raised:
        StackOptions(enable_alarms=True, alarm_sns_topic_arn=arn)
    assert raised.value.field == "alarm_sns_topic_arn" and reason in str(raised.value)


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:sns:us-east-1:123456789012:alerts",
        "arn:aws:sns:eu-central-2:123456789012:ops_alerts-1",
        "arn:aws:sns:us-east-1:123456789012:alerts.fifo",  # a FIFO topic
        "arn:aws:sns:us-east-1:123456789012:" + "t" * 256,
        "arn:aws-us-gov:sns:us-gov-west-1:123456789012:alerts",
        "arn:aws-cn:sns:cn-north-1:123456789012:alerts",
    ],
)
def test_valid_topic_arns_are_accepted(arn):
    assert StackOptions(enable_alarms=True, alarm_sns_topic_arn=arn).alarm_sns_topic_arn == arn


def test_a_boundary_may_be_an_aws_managed_policy():
    for arn in ("arn:aws:iam::aws:policy/PowerUserAccess", "arn:aws:iam::123456789012:policy/team/boundary"):
        assert StackOptions(permission_boundary=arn).permission_boundary == arn
    with pytest.raises(ValidationError, match="iam ARNs name no region"):
        StackOptions(permission_boundary="arn:aws:iam:us-east-1:123456789012:policy/b")
