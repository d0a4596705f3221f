"""The ZaeLimiter component under Pulumi's mocks: every property the engine would receive, per variant."""

from __future__ import annotations

import json
from dataclasses import fields

import pulumi
import pulumi_aws as aws
import pytest

from component_mocks import ACCOUNT, REGION, STREAM_LABEL, deploy
from pulumi_component import ZaeLimiter, ZaeLimiterArgs
from pulumi_component.aggregator import AGGREGATOR_TYPE_TOKEN
from pulumi_component.component import OUTPUT_KEYS, TYPE_TOKEN
from zae_limiter import StackOptions, ValidationError, iam
from zae_limiter.core.schema import TABLE

TABLE_T = "aws:dynamodb/table:Table"
FUNCTION_T = "aws:lambda/function:Function"
MAPPING_T = "aws:lambda/eventSourceMapping:EventSourceMapping"
LOG_GROUP_T = "aws:cloudwatch/logGroup:LogGroup"
ROLE_T = "aws:iam/role:Role"
ROLE_POLICY_T = "aws:iam/rolePolicy:RolePolicy"
POLICY_T = "aws:iam/policy:Policy"
QUEUE_T = "aws:sqs/queue:Queue"
ALARM_T = "aws:cloudwatch/metricAlarm:MetricAlarm"
AGGREGATOR_TYPES = {FUNCTION_T, MAPPING_T, LOG_GROUP_T, ROLE_T, ROLE_POLICY_T, QUEUE_T}
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/rate_limits"
STREAM_ARN = f"{TABLE_ARN}/stream/{STREAM_LABEL}"


def component(name: str = "limits", table: str = "rate_limits", **options):
    return deploy(lambda: ZaeLimiter(name, ZaeLimiterArgs(table, **options)), resolve=OUTPUT_KEYS)


def policy(resource) -> dict:
    return json.loads(resource.inputs["policy"])


def test_table_is_built_from_the_schema_module():
    table = component().one(TABLE_T).inputs
    assert table["name"] == "rate_limits"
    assert table["billingMode"] == "PAY_PER_REQUEST"
    assert (table["hashKey"], table["rangeKey"]) == (TABLE.hash_key, TABLE.range_key)
    assert {a["name"]: a["type"] for a in table["attributes"]} == dict(TABLE.attribute_types)
    assert [
        (i["name"], [(k["attributeName"], k["keyType"]) for k in i["keySchemas"]], i["projectionType"])
        for i in table["globalSecondaryIndexes"]
    ] == [(i.name, [(i.hash_key, "HASH"), (i.range_key, "RANGE")], i.projection) for i in TABLE.indexes]
    assert table["streamEnabled"] is True and table["streamViewType"] == TABLE.stream_view_type == "NEW_AND_OLD_IMAGES"
    assert table["ttl"] == {"attributeName": TABLE.ttl_attribute, "enabled": True}
    assert table["serverSideEncryption"] == {"enabled": True}
    assert table["pointInTimeRecovery"] == {"enabled": False}
    assert table["deletionProtectionEnabled"] is False
    assert "tags" not in table


def test_pitr_carries_its_recovery_period():
    assert component(pitr_recovery_days=7).one(TABLE_T).inputs["pointInTimeRecovery"] == {
        "enabled": True,
        "recoveryPeriodInDays": 7,
    }


def test_deletion_protection():
    assert component(deletion_protection=True).one(TABLE_T).inputs["deletionProtectionEnabled"] is True


def test_every_child_is_parented_to_the_component_and_named_after_it():
    """The table, the policies and the table's alarms under ZaeLimiter; the aggregator's resources under
    its own component, `<name>-aggregator`, itself under ZaeLimiter."""
    deployment = component("edge", enable_alarms=True)
    children = [urn for urn in deployment.urns if "$aws:" in urn]
    assert len(children) == len(deployment.custom) == 16
    limiter_urns = [urn for urn in children if f"::{TYPE_TOKEN}$aws:" in urn]
    aggregator_urns = [urn for urn in children if f"::{AGGREGATOR_TYPE_TOKEN}$aws:" in urn]
    assert len(limiter_urns) + len(aggregator_urns) == 16
    under_limiter = {urn.rpartition("::")[2] for urn in limiter_urns}
    under_aggregator = {urn.rpartition("::")[2] for urn in aggregator_urns}  # the queue and its alarm share a name
    assert under_limiter == {"edge-table", "edge-acquire-policy", "edge-full-access-policy", "edge-read-only-policy",
                             "edge-read-throttles", "edge-write-throttles"}
    assert under_aggregator == {"edge-aggregator", "edge-aggregator-dlq", "edge-aggregator-logs", "edge-aggregator-role",
                                "edge-aggregator-policy", "edge-aggregator-stream", "edge-aggregator-errors",
                                "edge-aggregator-duration", "edge-aggregator-iterator-age"}
    (aggregator,) = [urn for urn in deployment.urns if urn.endswith(f"{TYPE_TOKEN}${AGGREGATOR_TYPE_TOKEN}::edge-aggregator")]
    assert aggregator
    assert all(r.name.startswith("edge-") for r in deployment.custom)


def test_two_components_in_one_program_do_not_clash():
    def program():
        return [ZaeLimiter("a", ZaeLimiterArgs("table_a")), ZaeLimiter("b", ZaeLimiterArgs("table_b"))]

    deployment = deploy(program)
    names = [(r.type, r.name) for r in deployment.resources]
    assert len(names) == len(set(names)) == 2 * (1 + 1 + 10)  # each: ZaeLimiter, its aggregator, 10 resources
    functions = sorted(r.inputs["name"] for r in deployment.of_type(FUNCTION_T))
    assert functions == ["table_a-aggregator", "table_b-aggregator"]


def test_aggregator_function():
    deployment = component(snapshot_windows="hourly, daily,monthly", snapshot_retention_days=30, lambda_memory_mb=512, lambda_timeout_s=120)
    function = deployment.one(FUNCTION_T).inputs
    assert function["name"] == "rate_limits-aggregator"
    assert function["runtime"] == "python3.12"
    assert function["handler"] == "aggregator.handler.handler"
    assert (function["memorySize"], function["timeout"]) == (512, 120)
    assert function["environment"] == {
        "variables": {"SNAPSHOT_WINDOWS": "hourly,daily,monthly", "SNAPSHOT_RETENTION_DAYS": "30"}
    }
    role = deployment.one(ROLE_T)
    assert function["role"] == role.outputs["arn"]
    assert isinstance(deployment.one(FUNCTION_T).inputs["code"], pulumi.AssetArchive)


def test_aggregator_defaults_match_the_design():
    function = component().one(FUNCTION_T).inputs
    assert (function["memorySize"], function["timeout"]) == (256, 60)
    assert function["environment"]["variables"] == {"SNAPSHOT_WINDOWS": "hourly,daily", "SNAPSHOT_RETENTION_DAYS": "90"}


def test_log_group_is_the_functions_with_retention():
    deployment = component(log_retention_days=30)
    group = deployment.one(LOG_GROUP_T).inputs
    assert group == {"name": "/aws/lambda/rate_limits-aggregator", "retentionInDays": 30}
    assert deployment.exports["result.log_group_name"] == group["name"]


def test_stream_mapping_reports_partial_failures_and_sends_the_rest_to_the_queue():
    deployment = component()
    mapping = deployment.one(MAPPING_T).inputs
    queue = deployment.one(QUEUE_T)
    assert mapping["eventSourceArn"] == STREAM_ARN
    assert mapping["functionName"] == deployment.one(FUNCTION_T).outputs["arn"]
    assert mapping["startingPosition"] == "TRIM_HORIZON"
    assert mapping["bisectBatchOnFunctionError"] is True
    assert mapping["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 0 < mapping["maximumBatchingWindowInSeconds"] <= 300
    assert 0 < mapping["maximumRetryAttempts"] <= 10
    assert 60 <= mapping["maximumRecordAgeInSeconds"] <= 86400  # at most what the stream keeps
    assert mapping["destinationConfig"] == {"onFailure": {"destinationArn": queue.outputs["arn"]}}
    assert queue.inputs["sqsManagedSseEnabled"] is True
    assert queue.inputs["messageRetentionSeconds"] == 14 * 24 * 3600


def test_aggregator_role_is_least_privilege():
    deployment = component()
    role = deployment.one(ROLE_T).inputs
    trust = json.loads(role["assumeRolePolicy"])
    assert trust["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    assert "namePrefix" not in role and "name" not in role and "permissionsBoundary" not in role
    statements = {s["Sid"]: s for s in policy(deployment.one(ROLE_POLICY_T))["Statement"]}
    granted = iam.grants("aggregator")
    assert statements["ZaeLimiterTable"]["Action"] == list(granted[iam.TABLE])
    assert statements["ZaeLimiterTable"]["Resource"] == [TABLE_ARN]
    assert statements["ZaeLimiterStream"]["Action"] == list(granted[iam.STREAM]) == [
        "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams",
    ]
    assert statements["ZaeLimiterStream"]["Resource"] == [STREAM_ARN]
    group_arn = deployment.one(LOG_GROUP_T).outputs["arn"]
    assert statements["ZaeLimiterLogs"] == {
        "Sid": "ZaeLimiterLogs", "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": [f"{group_arn}:*"],
    }
    assert statements["ZaeLimiterFailures"]["Action"] == ["sqs:SendMessage"]
    assert statements["ZaeLimiterFailures"]["Resource"] == [deployment.one(QUEUE_T).outputs["arn"]]
    assert set(statements) == {"ZaeLimiterTable", "ZaeLimiterStream", "ZaeLimiterLogs", "ZaeLimiterFailures"}
    for statement in statements.values():
        assert statement["Effect"] == "Allow"
        assert all("*" not in action for action in statement["Action"])
        assert all(resource != "*" and "*" not in resource.replace(":*", "") for resource in statement["Resource"])
    assert deployment.one(ROLE_POLICY_T).inputs["role"] == deployment.one(ROLE_T).outputs["name"]


def test_role_prefix_and_permission_boundary():
    boundary = f"arn:aws:iam::{ACCOUNT}:policy/boundaries/app"
    role = component(role_name_prefix="team-x-", permission_boundary=boundary).one(ROLE_T).inputs
    assert role["namePrefix"] == "team-x-"
    assert role["permissionsBoundary"] == boundary


def test_application_policies_come_from_the_manifest():
    deployment = component()
    by_name = {r.name: r for r in deployment.of_type(POLICY_T)}
    assert set(by_name) == {"limits-acquire-policy", "limits-full-access-policy", "limits-read-only-policy"}
    for part, role in (("acquire", "acquire"), ("full-access", "full"), ("read-only", "read_only")):
        resource = by_name[f"limits-{part}-policy"]
        assert policy(resource) == iam.policy_document(role, TABLE_ARN)
        assert deployment.exports[f"result.{role.replace('full', 'full_access')}_policy_arn"] == resource.outputs["arn"]
    acquire = policy(by_name["limits-acquire-policy"])
    assert acquire["Statement"] == [
        {
            "Sid": "ZaeLimiterTable", "Effect": "Allow",
            "Action": ["dynamodb:BatchGetItem", "dynamodb:UpdateItem"], "Resource": [TABLE_ARN],
        }
    ]
    read_only = {s["Sid"]: s for s in policy(by_name["limits-read-only-policy"])["Statement"]}
    assert read_only["ZaeLimiterIndexes"]["Resource"] == [f"{TABLE_ARN}/index/*"]
    writes = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
    assert not writes & {a for s in read_only.values() for a in s["Action"]}


def test_outputs_are_registered_and_exposed():
    deployment = component()
    (registered,) = [v for urn, v in deployment.registered_outputs.items() if urn.endswith(f"{TYPE_TOKEN}::limits")]
    expected = {
        "table_name": "rate_limits",
        "table_arn": TABLE_ARN,
        "stream_arn": STREAM_ARN,
        "function_name": "rate_limits-aggregator",
        "function_arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:rate_limits-aggregator",
        "log_group_name": "/aws/lambda/rate_limits-aggregator",
        "dlq_url": deployment.one(QUEUE_T).outputs["url"],
    }
    for key, value in expected.items():
        assert registered[key] == value == deployment.exports[f"result.{key}"], key
    for key in ("acquire_policy_arn", "full_access_policy_arn", "read_only_policy_arn"):
        assert registered[key].startswith(f"arn:aws:iam::{ACCOUNT}:policy/limits-")
    assert set(registered) == set(OUTPUT_KEYS)


def test_without_aggregator():
    deployment = component(enable_aggregator=False, enable_alarms=True)
    assert not {r.type for r in deployment.resources} & AGGREGATOR_TYPES
    assert deployment.one(TABLE_T).inputs["streamEnabled"] is True  # the aggregator can be added later
    assert len(deployment.of_type(POLICY_T)) == 3
    alarms = {r.name for r in deployment.of_type(ALARM_T)}
    assert alarms == {"limits-read-throttles", "limits-write-throttles"}
    for key in ("function_name", "function_arn", "log_group_name", "dlq_url"):
        assert deployment.exports[f"result.{key}"] is None
    assert deployment.result.function_name is None


def test_no_alarms_by_default():
    assert component().of_type(ALARM_T) == []


def alarms_by_key(deployment) -> dict[str, dict]:
    return {r.name.removeprefix("limits-"): r.inputs for r in deployment.of_type(ALARM_T)}


@pytest.mark.parametrize("topic", [None, TOPIC], ids=["no-topic", "topic"])
def test_alarms(topic):
    deployment = component(enable_alarms=True, alarm_sns_topic_arn=topic, lambda_timeout_s=100)
    alarms = alarms_by_key(deployment)
    assert set(alarms) == {
        "aggregator-errors", "aggregator-duration", "aggregator-iterator-age", "aggregator-dlq",
        "read-throttles", "write-throttles",
    }
    function = {"FunctionName": "rate_limits-aggregator"}
    expected = {
        "aggregator-errors": ("AWS/Lambda", "Errors", "Sum", 0, function),
        "aggregator-duration": ("AWS/Lambda", "Duration", "Maximum", 80_000, function),
        "aggregator-iterator-age": ("AWS/Lambda", "IteratorAge", "Maximum", 300_000, function),
        "aggregator-dlq": (
            "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 0,
            {"QueueName": deployment.one(QUEUE_T).outputs["name"]},
        ),
        "read-throttles": ("AWS/DynamoDB", "ReadThrottleEvents", "Sum", 0, {"TableName": "rate_limits"}),
        "write-throttles": ("AWS/DynamoDB", "WriteThrottleEvents", "Sum", 0, {"TableName": "rate_limits"}),
    }
    for key, (namespace, metric, statistic, threshold, dimensions) in expected.items():
        alarm = alarms[key]
        assert (alarm["namespace"], alarm["metricName"], alarm["statistic"]) == (namespace, metric, statistic), key
        assert alarm["threshold"] == threshold and alarm["comparisonOperator"] == "GreaterThanThreshold", key
        assert alarm["dimensions"] == dimensions, key
        assert alarm["name"] == f"rate_limits-{key}"
        assert alarm["treatMissingData"] == "notBreaching"
        assert alarm.get("alarmActions", []) == ([topic] if topic else [])
        assert alarm.get("okActions", []) == ([topic] if topic else [])


def test_arns_may_be_outputs_of_the_same_program():
    """A topic or boundary policy created next to the component is passed as an Output."""

    def program():
        topic = aws.sns.Topic("alerts")
        boundary = aws.iam.Policy("boundary", policy="{}")
        return ZaeLimiter(
            "limits",
            ZaeLimiterArgs("rate_limits", enable_alarms=True, alarm_sns_topic_arn=topic.arn, permission_boundary=boundary.arn),
        )

    deployment = deploy(program)
    topic_arn = deployment.named("alerts").outputs["arn"]
    assert all(a.inputs["alarmActions"] == [topic_arn] for a in deployment.of_type(ALARM_T))
    assert deployment.one(ROLE_T).inputs["permissionsBoundary"] == deployment.named("boundary").outputs["arn"]


def test_tags_reach_every_taggable_child():
    tags = {"team": "ml", "cost-center": "42"}
    deployment = component(enable_alarms=True, tags=tags)
    untaggable = {ROLE_POLICY_T}  # an inline policy is part of its role
    taggable = [r for r in deployment.custom if r.type not in untaggable]
    assert {r.type for r in taggable} == {TABLE_T, FUNCTION_T, MAPPING_T, LOG_GROUP_T, ROLE_T, POLICY_T, QUEUE_T, ALARM_T}
    for resource in taggable:
        assert resource.inputs.get("tags") == tags, resource.name


def test_args_are_stack_options_plus_the_table_name():
    assert [f.name for f in fields(ZaeLimiterArgs)] == ["table_name", *(f.name for f in fields(StackOptions))]
    defaults = ZaeLimiterArgs("rate_limits")
    for f in fields(StackOptions):
        assert getattr(defaults, f.name) == getattr(StackOptions(), f.name), f.name
    options = StackOptions(enable_aggregator=False, pitr_recovery_days=3, tags={"a": "b"}, role_name_prefix="x")
    args = ZaeLimiterArgs.from_options("rate_limits", options)
    assert args == ZaeLimiterArgs("rate_limits", enable_aggregator=False, pitr_recovery_days=3, tags={"a": "b"}, role_name_prefix="x")
    assert ZaeLimiterArgs.from_options("rate_limits") == defaults


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"table_name": "x"}, "table_name"),
        ({"table_name": "bad name!"}, "table_name"),
        ({"table_name": "ok_table", "log_retention_days": 13}, "log_retention_days"),
        ({"table_name": "ok_table", "lambda_memory_mb": 64}, "lambda_memory_mb"),
        ({"table_name": "ok_table", "pitr_recovery_days": 36}, "pitr_recovery_days"),
        ({"table_name": "ok_table", "snapshot_windows": "weekly"}, "snapshot_windows"),
        ({"table_name": "ok_table", "alarm_sns_topic_arn": TOPIC}, "alarm_sns_topic_arn"),  # without enable_alarms
        ({"table_name": "ok_table", "permission_boundary": "boundary"}, "permission_boundary"),
        ({"table_name": "ok_table", "role_name_prefix": "has space"}, "role_name_prefix"),
        ({"table_name": "ok_table", "tags": {"k": 1}}, "tags"),
        ({"table_name": "ok_table", "enable_aggregator": "yes"}, "enable_aggregator"),
    ],
)
def test_bad_args_name_the_field(kwargs, field):
    with pytest.raises(ValidationError) as raised:
        ZaeLimiterArgs(**kwargs)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


def test_output_arns_still_get_the_other_rules():
    """An Output topic without enable_alarms is refused like a string one."""

    def program():
        ZaeLimiterArgs("rate_limits", alarm_sns_topic_arn=aws.sns.Topic("alerts").arn)

    with pytest.raises(ValidationError, match="alarm_sns_topic_arn: is only used with enable_alarms=True"):
        deploy(program)


def test_wrong_args_type_registers_nothing():
    def program():
        ZaeLimiter("limits", StackOptions())  # type: ignore[arg-type]

    with pytest.raises(ValidationError) as raised:
        deploy(program)
    assert raised.value.field == "args"


def test_long_and_dotted_table_names_give_valid_distinct_function_names():
    long_name = "t" * 255
    functions = [
        component(table=table).one(FUNCTION_T).inputs["name"] for table in ("a.b", "a-b", long_name)
    ]
    assert functions[1] == "a-b-aggregator"
    assert functions[0] != functions[1] and functions[0].startswith("a-b-aggregator-")
    assert all(len(name) <= 64 and name.replace("-", "").replace("_", "").isalnum() for name in functions)
