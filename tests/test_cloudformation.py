"""`zae-limiter cfn-template`: the deployment guide's CloudFormation path. The template is checked against the
sources it is generated from, against the Pulumi component under mocks, and deployed to the embedded server's
CloudFormation, with the guide's parameters, the guide's code upload and a limiter on the resulting table."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import re
import uuid
import zipfile
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from component_mocks import deploy
from conftest import FakeClock
from pulumi_component import ZaeLimiter, ZaeLimiterArgs
from pulumi_component import aggregator_settings as settings
from pulumi_component.cloudformation import (
    HANDLER,
    PLACEHOLDER_CODE,
    RETENTION_DAYS_PATTERN,
    template,
    template_json,
    window_choices,
)
from pulumi_component.component import OUTPUT_KEYS
from pulumi_component.lambda_package import ENTRY_POINT, RUNTIME, lambda_files
from zae_limiter import Limit, StackOptions, SyncRateLimiter, ValidationError, iam
from zae_limiter.cli import cli
from zae_limiter.core.schema import TABLE, WINDOWS, create_table_request, parse_windows

TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"
BOUNDARY = "arn:aws:iam::123456789012:policy/boundary"


def resources(doc: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in doc["Resources"].items() if r["Type"] == kind}


def one(doc: dict, kind: str) -> dict:
    (found,) = resources(doc, kind).values()
    return found


def camel(key: str) -> str:
    return "".join(part.capitalize() for part in key.split("_"))


def sub(text: str) -> dict:
    return {"Fn::Sub": text}


def test_the_table_comes_from_the_schema_module():
    doc = template()
    table = one(doc, "AWS::DynamoDB::Table")
    props = table["Properties"]
    request = create_table_request("x")
    assert props["TableName"] == {"Ref": "TableName"}
    for key in ("BillingMode", "KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes"):
        assert props[key] == request[key], key
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["StreamSpecification"] == {"StreamViewType": TABLE.stream_view_type}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": TABLE.ttl_attribute, "Enabled": True}
    assert props["PointInTimeRecoverySpecification"]["Fn::If"][0] == "PITREnabled"
    assert props["PointInTimeRecoverySpecification"]["Fn::If"][1] == {
        "PointInTimeRecoveryEnabled": True, "RecoveryPeriodInDays": {"Ref": "PITRRecoveryDays"},
    }
    assert props["DeletionProtectionEnabled"] is False
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Delete", "Retain")
    assert "Tags" not in props


def test_the_guides_parameters_take_their_defaults_from_the_options():
    params = template(StackOptions(snapshot_windows="hourly,monthly", snapshot_retention_days=30, pitr_recovery_days=7,
                                   log_retention_days=30), table_name="prod_limits")["Parameters"]
    defaults = {name: p.get("Default") for name, p in params.items()}
    assert defaults == {
        "TableName": "prod_limits", "SnapshotWindows": "hourly,monthly", "SnapshotRetentionDays": "30",
        "EnablePITR": "true", "PITRRecoveryDays": "7", "LogRetentionDays": "30", "CodeS3Bucket": "", "CodeS3Key": "lambda.zip",
    }
    plain = template()["Parameters"]
    assert (plain["EnablePITR"]["Default"], plain["PITRRecoveryDays"]["Default"]) == ("false", "35")
    assert "14" in plain["LogRetentionDays"]["AllowedValues"] and "13" not in plain["LogRetentionDays"]["AllowedValues"]


def test_the_aggregator_has_the_components_settings():
    doc = template(StackOptions(lambda_memory_mb=512, lambda_timeout_s=120))
    function = one(doc, "AWS::Lambda::Function")
    props = function["Properties"]
    assert (props["Runtime"], props["Handler"], props["MemorySize"], props["Timeout"]) == (RUNTIME, HANDLER, 512, 120)
    assert props["FunctionName"] == sub("${AWS::StackName}-aggregator")
    assert props["Environment"]["Variables"] == {
        "SNAPSHOT_WINDOWS": sub("${SnapshotWindows}"), "SNAPSHOT_RETENTION_DAYS": sub("${SnapshotRetentionDays}"),
    }
    assert set(props["Environment"]["Variables"]) == set(settings.environment())
    assert props["Code"]["Fn::If"][0] == "CodeInS3"
    assert props["Code"]["Fn::If"][2] == {"ZipFile": PLACEHOLDER_CODE}
    assert function["DependsOn"] == ["AggregatorLogs"]  # the role comes first through its Role attribute
    mapping = one(doc, "AWS::Lambda::EventSourceMapping")["Properties"]
    assert mapping == {
        "EventSourceArn": {"Fn::GetAtt": ["Table", "StreamArn"]},
        "FunctionName": {"Ref": "AggregatorFunction"},
        "StartingPosition": settings.STARTING_POSITION,
        "BatchSize": settings.BATCH_SIZE,
        "MaximumBatchingWindowInSeconds": settings.BATCHING_WINDOW_S,
        "BisectBatchOnFunctionError": True,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "MaximumRetryAttempts": settings.MAX_RETRY_ATTEMPTS,
        "MaximumRecordAgeInSeconds": settings.MAX_RECORD_AGE_S,
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["AggregatorDLQ", "Arn"]}}},
    }
    logs = one(doc, "AWS::Logs::LogGroup")["Properties"]
    assert logs == {"LogGroupName": sub("/aws/lambda/${AWS::StackName}-aggregator"), "RetentionInDays": {"Ref": "LogRetentionDays"}}
    queue = one(doc, "AWS::SQS::Queue")["Properties"]
    assert queue == {"MessageRetentionPeriod": settings.DLQ_RETENTION_S, "SqsManagedSseEnabled": True}


def test_parameters_admit_only_what_the_aggregator_accepts():
    """A window list or retention the aggregator refused would deploy, then fail every batch."""
    choices = window_choices()
    assert len(choices) == len(set(choices)) == 15
    for choice in choices:
        assert parse_windows(choice) == tuple(choice.split(","))
    assert "hourly,hourly" not in choices and "hourly,daily" in choices and ",".join(WINDOWS) in choices
    assert re.fullmatch(RETENTION_DAYS_PATTERN, "0") is None
    accepted = [days for days in range(0, 5000) if re.fullmatch(RETENTION_DAYS_PATTERN, str(days))]
    assert accepted == list(range(1, 3651))
    for text in ("90.5", "1e2", "090", "-1", " 90", ""):
        assert re.fullmatch(RETENTION_DAYS_PATTERN, text) is None, text


def test_the_placeholder_fails_each_batch_and_the_uploaded_code_has_the_same_entry_point(tmp_path):
    namespace: dict = {}
    exec(compile(PLACEHOLDER_CODE, "index.py", "exec"), namespace)  # noqa: S102 - the template's own code
    with pytest.raises(RuntimeError, match="lambda-export"):
        namespace["handler"]({"Records": []}, None)
    files = lambda_files()
    assert HANDLER == "index.handler" and ENTRY_POINT == "index.py" in files
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    probe = "import sys; sys.path.insert(0, sys.argv[1]); import index, aggregator.handler as h; assert index.handler is h.handler; print('ok')"
    ran = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert ran.stdout.strip() == "ok", ran.stderr


def test_the_aggregators_role_lists_only_the_manifests_actions_on_this_table():
    role = one(template(), "AWS::IAM::Role")["Properties"]
    (policy,) = role["Policies"]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    granted = iam.grants("aggregator")
    assert statements["ZaeLimiterTable"]["Action"] == list(granted["table"])
    assert statements["ZaeLimiterTable"]["Resource"] == [sub("${Table.Arn}")]
    assert statements["ZaeLimiterStream"]["Action"] == list(granted["stream"])
    assert statements["ZaeLimiterStream"]["Resource"] == [sub("${Table.StreamArn}")]
    assert statements["ZaeLimiterFailures"]["Resource"] == [sub("${AggregatorDLQ.Arn}")]
    assert statements["ZaeLimiterLogs"]["Resource"] == [
        sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/${AWS::StackName}-aggregator:*")
    ]
    text = json.dumps(template())
    assert '"*"' not in text and '"Resource": "*"' not in text
    assert "PermissionsBoundary" not in role and "RoleName" not in role


def test_application_policies_come_from_the_manifest():
    doc = template()
    policies = resources(doc, "AWS::IAM::ManagedPolicy")
    assert set(policies) == {"AcquirePolicy", "FullAccessPolicy", "ReadOnlyPolicy"}
    for role, name in (("acquire", "AcquirePolicy"), ("full", "FullAccessPolicy"), ("read_only", "ReadOnlyPolicy")):
        expected = json.loads(json.dumps(iam.policy_document(role, "${Table.Arn}")))
        for statement in expected["Statement"]:
            statement["Resource"] = [sub(arn) for arn in statement["Resource"]]
        assert policies[name]["Properties"]["PolicyDocument"] == expected, role


def test_outputs_are_the_components_outputs():
    assert set(template()["Outputs"]) == {camel(key) for key in OUTPUT_KEYS}
    without = template(StackOptions(enable_aggregator=False))
    assert set(without["Outputs"]) == {camel(k) for k in OUTPUT_KEYS if k not in ("function_name", "function_arn", "log_group_name", "dlq_url")}


def test_variants():
    bare = template(StackOptions(enable_aggregator=False))
    assert {r["Type"] for r in bare["Resources"].values()} == {"AWS::DynamoDB::Table", "AWS::IAM::ManagedPolicy"}
    alarmed = template(StackOptions(enable_alarms=True, alarm_sns_topic_arn=TOPIC))
    alarms = resources(alarmed, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 6
    assert {a["Properties"]["MetricName"] for a in alarms.values()} == {
        "ReadThrottleEvents", "WriteThrottleEvents", "Errors", "Duration", "IteratorAge", "ApproximateNumberOfMessagesVisible",
    }
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [TOPIC] == alarm["Properties"]["OKActions"]
    duration = next(a for a in alarms.values() if a["Properties"]["MetricName"] == "Duration")
    assert duration["Properties"]["Threshold"] == 0.8 * 60 * 1000
    assert len(resources(template(StackOptions(enable_alarms=True, enable_aggregator=False)), "AWS::CloudWatch::Alarm")) == 2
    guarded = template(StackOptions(deletion_protection=True, permission_boundary=BOUNDARY, role_name_prefix="team-",
                                    tags={"team": "ai", "env": "prod"}))
    table = one(guarded, "AWS::DynamoDB::Table")
    assert table["Properties"]["DeletionProtectionEnabled"] is True and table["DeletionPolicy"] == "Retain"
    assert table["Properties"]["Tags"] == [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "ai"}]
    role = one(guarded, "AWS::IAM::Role")["Properties"]
    assert role["PermissionsBoundary"] == BOUNDARY
    # IAM is global: the prefix, then a part of the stack's unique id (never the stack name alone).
    stack_uuid = {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}
    assert role["RoleName"] == {"Fn::Join": ["", ["team-", "aggregator-", {"Fn::Select": [0, {"Fn::Split": ["-", stack_uuid]}]}]]}
    for kind in ("AWS::SQS::Queue", "AWS::Logs::LogGroup", "AWS::IAM::Role", "AWS::Lambda::Function",
                 "AWS::Lambda::EventSourceMapping"):
        assert one(guarded, kind)["Properties"]["Tags"] == table["Properties"]["Tags"], kind
    tagged_alarms = template(StackOptions(enable_alarms=True, tags={"team": "ai"}))
    for alarm in resources(tagged_alarms, "AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["Tags"] == [{"Key": "team", "Value": "ai"}]


VARIANTS = [
    StackOptions(),
    StackOptions(enable_alarms=True, alarm_sns_topic_arn=TOPIC, role_name_prefix="team-", permission_boundary=BOUNDARY,
                 tags={"team": "ai"}, deletion_protection=True, pitr_recovery_days=7, snapshot_windows="monthly"),
    StackOptions(enable_aggregator=False, enable_alarms=True),
    StackOptions(enable_aggregator=False),
]


@pytest.mark.parametrize("options", VARIANTS, ids=["defaults", "everything", "alarms-only", "table-only"])
def test_cfn_lint_finds_nothing(options):
    """AWS's resource schemas, through cfn-lint: property names and types, attribute references,
    intrinsic functions, unused parameters or conditions, IAM policy shapes."""
    from cfnlint.api import lint

    found = lint(template_json(options), regions=["us-east-1", "eu-west-1"])
    assert [(m.rule.id, m.message) for m in found] == []


def test_without_the_aggregator_only_the_tables_parameters_remain():
    params = template(StackOptions(enable_aggregator=False))["Parameters"]
    assert set(params) == {"TableName", "EnablePITR", "PITRRecoveryDays"}


def test_bad_arguments_name_the_field():
    with pytest.raises(ValidationError) as raised:
        template(table_name="no spaces")
    assert raised.value.field == "table_name"
    with pytest.raises(TypeError, match="StackOptions"):
        template({"enable_aggregator": False})


def test_it_declares_what_the_pulumi_component_creates():
    """Same configuration, same pieces: each kind of resource of the component has its counterpart."""
    counterpart = {
        "aws:dynamodb/table:Table": "AWS::DynamoDB::Table",
        "aws:sqs/queue:Queue": "AWS::SQS::Queue",
        "aws:cloudwatch/logGroup:LogGroup": "AWS::Logs::LogGroup",
        "aws:iam/role:Role": "AWS::IAM::Role",
        "aws:iam/rolePolicy:RolePolicy": "AWS::IAM::Role",  # inline in the role here
        "aws:lambda/function:Function": "AWS::Lambda::Function",
        "aws:lambda/eventSourceMapping:EventSourceMapping": "AWS::Lambda::EventSourceMapping",
        "aws:cloudwatch/metricAlarm:MetricAlarm": "AWS::CloudWatch::Alarm",
        "aws:iam/policy:Policy": "AWS::IAM::ManagedPolicy",
    }
    for options in (StackOptions(), StackOptions(enable_aggregator=False, enable_alarms=True)):
        deployed = deploy(lambda: ZaeLimiter("limits", ZaeLimiterArgs.from_options("rate_limits", options)))
        theirs: dict[str, int] = {}
        for resource in deployed.custom:
            theirs[counterpart[resource.type]] = theirs.get(counterpart[resource.type], 0) + (resource.type != "aws:iam/rolePolicy:RolePolicy")
        ours: dict[str, int] = {}
        for resource in template(options)["Resources"].values():
            ours[resource["Type"]] = ours.get(resource["Type"], 0) + 1
        assert ours == theirs, options
        doc = template(options)
        alarms = [r.inputs for r in deployed.custom if r.type == "aws:cloudwatch/metricAlarm:MetricAlarm"]
        assert sorted((a["metricName"], a["statistic"], a["threshold"], a["period"]) for a in alarms) == sorted(
            (p["MetricName"], p["Statistic"], p["Threshold"], p["Period"])
            for p in (r["Properties"] for r in resources(doc, "AWS::CloudWatch::Alarm").values())
        )
        function = [r.inputs for r in deployed.custom if r.type == "aws:lambda/function:Function"]
        if function:
            props = one(doc, "AWS::Lambda::Function")["Properties"]
            assert (function[0]["memorySize"], function[0]["timeout"], function[0]["runtime"]) == (
                props["MemorySize"], props["Timeout"], props["Runtime"])
            (mapping,) = [r.inputs for r in deployed.custom if r.type == "aws:lambda/eventSourceMapping:EventSourceMapping"]
            ours_mapping = one(doc, "AWS::Lambda::EventSourceMapping")["Properties"]
            assert (mapping["startingPosition"], mapping["batchSize"], mapping["maximumBatchingWindowInSeconds"],
                    mapping["bisectBatchOnFunctionError"], mapping["functionResponseTypes"], mapping["maximumRetryAttempts"],
                    mapping["maximumRecordAgeInSeconds"]) == (
                ours_mapping["StartingPosition"], ours_mapping["BatchSize"], ours_mapping["MaximumBatchingWindowInSeconds"],
                ours_mapping["BisectBatchOnFunctionError"], ours_mapping["FunctionResponseTypes"],
                ours_mapping["MaximumRetryAttempts"], ours_mapping["MaximumRecordAgeInSeconds"])


def test_cli_writes_the_template(tmp_path):
    runner = CliRunner()
    printed = runner.invoke(cli, ["cfn-template"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output) == template()
    target = tmp_path / "template.yaml"
    written = runner.invoke(cli, ["cfn-template", "--table-name", "prod_limits", "--no-aggregator", "--pitr-recovery-days", "7",
                                  "--enable-alarms", "--alarm-sns-topic", TOPIC, "--output", str(target)])
    assert written.exit_code == 0, written.output
    assert json.loads(target.read_text()) == template(
        StackOptions(enable_aggregator=False, pitr_recovery_days=7, enable_alarms=True, alarm_sns_topic_arn=TOPIC), "prod_limits"
    )


@pytest.mark.parametrize(
    "args, option",
    [
        (["--table-name", "a b"], "--table-name"),
        (["--pitr-recovery-days", "40"], "--pitr-recovery-days"),
        (["--log-retention-days", "13"], "--log-retention-days"),
        (["--alarm-sns-topic", TOPIC], "--alarm-sns-topic"),  # without --enable-alarms
        (["--lambda-memory", "lots"], "--lambda-memory"),
    ],
)
def test_cli_bad_options_exit_2_naming_the_option(args, option):
    result = CliRunner().invoke(cli, ["cfn-template", *args])
    assert result.exit_code == 2, result.output
    assert option in result.output and "Traceback" not in result.output


def test_cli_subprocess_needs_no_pulumi_sdk(tmp_path):
    probe = (
        "import sys; sys.modules['pulumi'] = None; "
        "from zae_limiter.cli import main; sys.argv = ['zae-limiter', 'cfn-template', '--output', sys.argv[1]]; main()"
    )
    target = tmp_path / "t.json"
    ran = subprocess.run([sys.executable, "-c", probe, str(target)], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert json.loads(target.read_text()) == template()
    script = Path(sys.executable).with_name("zae-limiter")  # the console script, as the guide runs it
    cli_ran = subprocess.run([str(script), "cfn-template", "--no-aggregator"], capture_output=True, text=True, timeout=120)
    assert cli_ran.returncode == 0, cli_ran.stderr
    assert json.loads(cli_ran.stdout) == template(StackOptions(enable_aggregator=False))


def test_the_guides_commands_deploy_it_and_a_limiter_runs_on_it(endpoint_url, tmp_path):
    """`aws cloudformation deploy --parameter-overrides TableName=... SnapshotRetentionDays=90 EnablePITR=true`,
    then `aws lambda update-function-code` with the lambda-export zip, on the embedded server's CloudFormation."""
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    cloudformation = session.client("cloudformation", endpoint_url=endpoint_url)
    stack = f"zae-limiter-{uuid.uuid4().hex[:8]}"
    table_name = f"cfn_{uuid.uuid4().hex[:8]}"
    body = CliRunner().invoke(cli, ["cfn-template", "--enable-alarms", "--role-name-prefix", "team-"]).output
    cloudformation.create_stack(
        StackName=stack,
        TemplateBody=body,
        Parameters=[
            {"ParameterKey": "TableName", "ParameterValue": table_name},
            {"ParameterKey": "SnapshotRetentionDays", "ParameterValue": "90"},
            {"ParameterKey": "EnablePITR", "ParameterValue": "true"},
        ],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    try:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
        assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
        assert set(outputs) == {camel(key) for key in OUTPUT_KEYS}
        assert outputs["TableName"] == table_name and outputs["FunctionName"] == f"{stack}-aggregator"

        dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
        table = dynamodb.describe_table(TableName=table_name)["Table"]
        assert table["KeySchema"] == create_table_request(table_name)["KeySchema"]
        assert sorted(i["IndexName"] for i in table["GlobalSecondaryIndexes"]) == sorted(i.name for i in TABLE.indexes)
        assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        assert outputs["StreamArn"] == table["LatestStreamArn"]

        lambda_ = session.client("lambda", endpoint_url=endpoint_url)
        config = lambda_.get_function_configuration(FunctionName=f"{stack}-aggregator")
        role_name = config["Role"].rpartition("/")[2]
        stack_id = described["StackId"].rpartition("/")[2]
        assert role_name == f"team-aggregator-{stack_id.split('-')[0]}"
        assert (config["Runtime"], config["Handler"], config["MemorySize"], config["Timeout"]) == (RUNTIME, HANDLER, 256, 60)
        assert config["Environment"]["Variables"] == {"SNAPSHOT_WINDOWS": "hourly,daily", "SNAPSHOT_RETENTION_DAYS": "90"}
        (mapping,) = lambda_.list_event_source_mappings(FunctionName=f"{stack}-aggregator")["EventSourceMappings"]
        assert mapping["EventSourceArn"] == table["LatestStreamArn"]
        assert mapping["BatchSize"] == settings.BATCH_SIZE
        # Every declared resource created. (moto's CloudFormation accepts the alarms and lists them, with no
        # logical id, but does not create them in its CloudWatch; test_variants checks their definitions.)
        created = cloudformation.list_stack_resources(StackName=stack)["StackResourceSummaries"]
        assert len(created) == len(template(StackOptions(enable_alarms=True))["Resources"])
        assert all(r["ResourceStatus"] == "CREATE_COMPLETE" for r in created)
        declared = set(template()["Resources"])
        assert declared <= {r["LogicalResourceId"] for r in created}

        # The guide's next step: the code, from lambda-export.
        zipped = tmp_path / "lambda.zip"
        assert CliRunner().invoke(cli, ["lambda-export", "--output", str(zipped)]).exit_code == 0
        updated = lambda_.update_function_code(FunctionName=f"{stack}-aggregator", ZipFile=zipped.read_bytes())
        assert updated["CodeSize"] == zipped.stat().st_size
        with zipfile.ZipFile(io.BytesIO(zipped.read_bytes())) as archive:
            assert set(archive.namelist()) == set(lambda_files())

        # A clock that stands still: with time.time_ns, the refill while the test runs (1/6 token a second)
        # made the balance drift past the tolerance on a busy machine.
        with SyncRateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url,
                             clock=FakeClock()) as limiter:
            with limiter.acquire("tenant", "gpt", [Limit.per_minute("rpm", 10)], consume={"rpm": 3}):
                pass
            assert limiter.available("tenant", "gpt", [Limit.per_minute("rpm", 10)])["rpm"] == pytest.approx(7, abs=0.01)
    finally:
        cloudformation.delete_stack(StackName=stack)
    assert table_name not in session.client("dynamodb", endpoint_url=endpoint_url).list_tables()["TableNames"]


# Every character AWS allows in a tag (letters of any script, numbers, spaces and _ . : / = + - @).
ODD_TAGS = {"cost center": "team:ml/42", "owner@corp": "a+b=c_d.e-f", "équipe": "données 数据"}


def test_user_strings_are_written_as_they_are(tmp_path):
    """Before: every template string with `${` became an Fn::Sub, a user's included. Tags now refuse `$`
    `{` `}` as AWS does, and a user's string is never substituted whatever it holds."""
    from pulumi_component.cloudformation import Literal, _sub

    assert _sub({"Value": Literal("${AWS::AccountId}")}) == {"Value": "${AWS::AccountId}"}
    assert _sub({"Value": "${AWS::StackName}-x"}) == {"Value": {"Fn::Sub": "${AWS::StackName}-x"}}  # the template's own
    options = StackOptions(tags=ODD_TAGS, enable_alarms=True, alarm_sns_topic_arn=TOPIC, permission_boundary=BOUNDARY,
                           role_name_prefix="team@-")
    doc = template(options)
    tagged = [r for r in doc["Resources"].values() if "Tags" in r["Properties"]]
    assert len(tagged) >= 6
    for resource in tagged:
        assert resource["Properties"]["Tags"] == [{"Key": k, "Value": v} for k, v in sorted(ODD_TAGS.items())]
    from cfnlint.api import lint

    assert [(m.rule.id, m.message) for m in lint(template_json(options), regions=["us-east-1"])] == []


@pytest.mark.parametrize("tag", ["cost=${AWS::AccountId}", "owner=team-${name}", "${key}=v", "a=b{c}", "aws:owner=x", "t=a;b"])
def test_a_tag_aws_would_refuse_is_refused_before_anything(tag, tmp_path):
    """`${` never reaches the template, nor Pulumi, nor AWS (which refuses `$`, `{` and `}` in tags)."""
    key, _, value = tag.partition("=")
    with pytest.raises(ValidationError) as raised:
        StackOptions(tags={key: value})
    assert raised.value.field == "tags"
    for command in (["cfn-template"], ["program", str(tmp_path / "infra")]):
        result = CliRunner().invoke(cli, [*command, "--tag", tag])
        assert result.exit_code == 2 and "'--tag'" in result.output, result.output
        assert "AWS's rule" in result.output or "reserved by AWS" in result.output, result.output
    assert not (tmp_path / "infra").exists()


def test_tags_reach_the_table_as_written(endpoint_url):
    """On the embedded server's CloudFormation, which substitutes Fn::Sub as AWS does."""
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    cloudformation = session.client("cloudformation", endpoint_url=endpoint_url)
    stack, table_name = f"zl-tags-{uuid.uuid4().hex[:8]}", f"cfn_{uuid.uuid4().hex[:8]}"
    body = template_json(StackOptions(enable_aggregator=False, tags=ODD_TAGS))
    cloudformation.create_stack(StackName=stack, TemplateBody=body,
                                Parameters=[{"ParameterKey": "TableName", "ParameterValue": table_name}])
    try:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
        assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
        dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
        arn = dynamodb.describe_table(TableName=table_name)["Table"]["TableArn"]
        stored = {t["Key"]: t["Value"] for t in dynamodb.list_tags_of_resource(ResourceArn=arn)["Tags"]}
        assert stored == ODD_TAGS
    finally:
        cloudformation.delete_stack(StackName=stack)
