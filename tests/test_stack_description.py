"""The component and the CloudFormation template come from one description of the stack
(pulumi_component/stack_description.py), and they agree.

Each variant is built both ways: the component under Pulumi's mocks, and the template evaluated as
CloudFormation would evaluate it, for a stack named like the table (the two name roots: see the
description), with its parameters' defaults, and with each `Ref`/`Fn::GetAtt` answered by what AWS
documents for the type, from the matching Pulumi resource's outputs. The template's properties are then
read back into Pulumi's arguments with the property names of AWS's resource types (written here, not taken
from the code) and compared, resource by resource, with what the component registered. The differences
that must exist are listed, each with its reason, and checked on their own.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

import pytest
from hypothesis import given, strategies as st

from component_mocks import ACCOUNT, REGION, Deployment, deploy
from pulumi_component import ZaeLimiter, ZaeLimiterArgs, names
from pulumi_component.cloudformation import PLACEHOLDER_CODE, template
from pulumi_component.lambda_package import HANDLER
from pulumi_component.stack_description import (
    INLINE_POLICY_NAME,
    KINDS,
    ROLE_POLICY,
    TEMPLATE_HANDLER,
    describe,
)
from zae_limiter import StackOptions

# A name valid as a DynamoDB table and as a CloudFormation stack: the guide's stack.
ROOT = "zae-limiter"
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{ROOT}/5f2b1c3e-0a1b-11ef-9c2d-0e1f2a3b4c5d"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"
VARIANTS = {
    "defaults": StackOptions(),
    "everything": StackOptions(
        snapshot_windows="hourly,daily,monthly", snapshot_retention_days=30, pitr_recovery_days=7, log_retention_days=30,
        lambda_memory_mb=512, lambda_timeout_s=90, enable_alarms=True, alarm_sns_topic_arn=TOPIC,
        permission_boundary=f"arn:aws:iam::{ACCOUNT}:policy/boundary", role_name_prefix="team-",
        deletion_protection=True, tags={"team": "ml", "env": "prod"},
    ),
    "alarms-without-topic": StackOptions(enable_alarms=True),
    "table-and-alarms": StackOptions(enable_aggregator=False, enable_alarms=True),
    "table-only": StackOptions(enable_aggregator=False),
}

# What `Ref` and `Fn::GetAtt` return, per CloudFormation type (AWS's documented return values), as the
# name of the Pulumi output that holds the same value.
REF = {
    "AWS::DynamoDB::Table": "name", "AWS::SQS::Queue": "url", "AWS::Logs::LogGroup": "name", "AWS::IAM::Role": "name",
    "AWS::Lambda::Function": "name", "AWS::IAM::ManagedPolicy": "arn",
}
GET_ATT = {"Arn": "arn", "StreamArn": "streamArn", "QueueName": "name"}


class Evaluation:
    """CloudFormation's evaluation of a template for one stack, the resources answered from a deployment."""

    def __init__(self, doc: dict, resources: dict[str, Any]) -> None:
        self.doc = doc
        self.resources = resources  # logical id -> the matching Pulumi resource (Registered)
        self.parameters = {name: self._typed(p) for name, p in doc["Parameters"].items()}
        self.pseudo = {"AWS::StackName": ROOT, "AWS::StackId": STACK_ID, "AWS::Region": REGION,
                       "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}
        self.conditions = {name: self.value(c) for name, c in doc.get("Conditions", {}).items()}

    @staticmethod
    def _typed(parameter: dict) -> Any:
        return int(parameter["Default"]) if parameter["Type"] == "Number" else parameter["Default"]

    def ref(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        if name in self.pseudo:
            return self.pseudo[name]
        resource = self.resources[name]
        return resource.outputs[REF[self.doc["Resources"][name]["Type"]]]

    def get_att(self, name: str, attribute: str) -> Any:
        return self.resources[name].outputs[GET_ATT[attribute]]

    def _sub(self, text: str) -> str:
        def one(match: re.Match) -> str:
            name, _, attribute = match[1].partition(".")
            return str(self.get_att(name, attribute) if attribute and "::" not in name else self.ref(match[1]))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.value(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            functions: dict[str, Callable[[Any], Any]] = {
                "Ref": self.ref,
                "Fn::GetAtt": lambda a: self.get_att(*a),
                "Fn::Sub": self._sub,
                "Fn::If": lambda a: self.value(a[1] if self.conditions[a[0]] else a[2]),
                "Fn::Equals": lambda a: self.value(a[0]) == self.value(a[1]),
                "Fn::Not": lambda a: not self.value(a[0]),
                "Fn::Join": lambda a: a[0].join(str(self.value(part)) for part in a[1]),
                "Fn::Select": lambda a: self.value(a[1])[a[0]],
                "Fn::Split": lambda a: self.value(a[1]).split(a[0]),
            }
            if key in functions:
                return functions[key](arg)
        return {key: self.value(item) for key, item in node.items()}


def _tags(props: dict) -> dict:
    tags = {t["Key"]: t["Value"] for t in props.get("Tags", [])}
    return {"tags": tags} if tags else {}


def _pitr(spec: dict) -> dict:
    enabled = spec["PointInTimeRecoveryEnabled"]
    return {"enabled": enabled, **({"recoveryPeriodInDays": spec["RecoveryPeriodInDays"]} if enabled else {})}


# A CloudFormation resource's properties as Pulumi's arguments (camelCase, as the engine receives them).
AS_PULUMI: dict[str, Callable[[dict], dict]] = {
    "AWS::DynamoDB::Table": lambda p: {
        "name": p["TableName"], "billingMode": p["BillingMode"],
        "hashKey": next(k["AttributeName"] for k in p["KeySchema"] if k["KeyType"] == "HASH"),
        "rangeKey": next(k["AttributeName"] for k in p["KeySchema"] if k["KeyType"] == "RANGE"),
        "attributes": [{"name": a["AttributeName"], "type": a["AttributeType"]} for a in p["AttributeDefinitions"]],
        "globalSecondaryIndexes": [
            {"name": i["IndexName"], "projectionType": i["Projection"]["ProjectionType"],
             "keySchemas": [{"attributeName": k["AttributeName"], "keyType": k["KeyType"]} for k in i["KeySchema"]]}
            for i in p["GlobalSecondaryIndexes"]
        ],
        "streamEnabled": "StreamSpecification" in p, "streamViewType": p["StreamSpecification"]["StreamViewType"],
        "ttl": {"attributeName": p["TimeToLiveSpecification"]["AttributeName"], "enabled": p["TimeToLiveSpecification"]["Enabled"]},
        "serverSideEncryption": {"enabled": p["SSESpecification"]["SSEEnabled"]},
        "pointInTimeRecovery": _pitr(p["PointInTimeRecoverySpecification"]),
        "deletionProtectionEnabled": p["DeletionProtectionEnabled"], **_tags(p),
    },
    "AWS::SQS::Queue": lambda p: {
        "messageRetentionSeconds": p["MessageRetentionPeriod"], "sqsManagedSseEnabled": p["SqsManagedSseEnabled"], **_tags(p),
    },
    "AWS::Logs::LogGroup": lambda p: {"name": p["LogGroupName"], "retentionInDays": p["RetentionInDays"], **_tags(p)},
    "AWS::IAM::Role": lambda p: {
        "assumeRolePolicy": p["AssumeRolePolicyDocument"], "description": p["Description"],
        **({"permissionsBoundary": p["PermissionsBoundary"]} if "PermissionsBoundary" in p else {}), **_tags(p),
    },
    "AWS::Lambda::Function": lambda p: {
        "name": p["FunctionName"], "description": p["Description"], "runtime": p["Runtime"], "role": p["Role"],
        "memorySize": p["MemorySize"], "timeout": p["Timeout"], "environment": {"variables": p["Environment"]["Variables"]},
        **_tags(p),
    },
    "AWS::Lambda::EventSourceMapping": lambda p: {
        "eventSourceArn": p["EventSourceArn"], "startingPosition": p["StartingPosition"], "batchSize": p["BatchSize"],
        "maximumBatchingWindowInSeconds": p["MaximumBatchingWindowInSeconds"],
        "bisectBatchOnFunctionError": p["BisectBatchOnFunctionError"], "functionResponseTypes": p["FunctionResponseTypes"],
        "maximumRetryAttempts": p["MaximumRetryAttempts"], "maximumRecordAgeInSeconds": p["MaximumRecordAgeInSeconds"],
        "destinationConfig": {"onFailure": {"destinationArn": p["DestinationConfig"]["OnFailure"]["Destination"]}}, **_tags(p),
    },
    "AWS::CloudWatch::Alarm": lambda p: {
        "name": p["AlarmName"], "alarmDescription": p["AlarmDescription"], "namespace": p["Namespace"],
        "metricName": p["MetricName"], "statistic": p["Statistic"], "period": p["Period"],
        "dimensions": {d["Name"]: d["Value"] for d in p["Dimensions"]}, "evaluationPeriods": p["EvaluationPeriods"],
        "comparisonOperator": p["ComparisonOperator"], "threshold": p["Threshold"],
        "treatMissingData": p["TreatMissingData"], "alarmActions": p["AlarmActions"], "okActions": p["OKActions"], **_tags(p),
    },
    "AWS::IAM::ManagedPolicy": lambda p: {"description": p["Description"], "policy": p["PolicyDocument"]},
}
JSON_INPUTS = ("assumeRolePolicy", "policy")  # IAM documents: JSON text in Pulumi, objects in CloudFormation


def build_both(options: StackOptions) -> tuple[Deployment, dict, Evaluation, dict]:
    deployment = deploy(lambda: ZaeLimiter("limits", ZaeLimiterArgs.from_options(ROOT, options)))
    by_logical_name = {(r.type, r.name): r for r in deployment.custom}
    described = describe(options)
    pulumi_of = {r.logical_id: by_logical_name[(r.kind.pulumi, f"limits-{r.suffix}")] for r in described if r.kind is not ROLE_POLICY}
    doc = template(options, table_name=ROOT)
    return deployment, pulumi_of, Evaluation(doc, pulumi_of), doc


def _comparable(inputs: dict) -> dict:
    return {key: json.loads(value) if key in JSON_INPUTS else value for key, value in inputs.items()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_same_resources_with_the_same_settings(variant):
    options = VARIANTS[variant]
    deployment, pulumi_of, evaluation, doc = build_both(options)
    # The same resources: one template resource for each of the component's (its role's policy inline).
    assert len(doc["Resources"]) == len(deployment.custom) - len(deployment.of_type(ROLE_POLICY.pulumi))
    assert {r.type for r in deployment.custom} <= {kind.pulumi for kind in KINDS}
    for logical_id, resource in doc["Resources"].items():
        theirs = pulumi_of[logical_id]
        assert {kind.cloudformation for kind in KINDS if kind.pulumi == theirs.type} == {resource["Type"]}, logical_id
        props = evaluation.value(resource["Properties"])
        ours = AS_PULUMI[resource["Type"]](props)
        inputs = _comparable(theirs.inputs)
        # The differences that must be (stack_description.py says why); each is checked below.
        for key in {"handler", "code", "functionName", "namePrefix"}:
            inputs.pop(key, None)
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            inputs.pop("tags", None)  # AWS::IAM::ManagedPolicy has no Tags
        assert ours == inputs, logical_id


@pytest.mark.parametrize("variant", ["defaults", "everything"])
def test_the_differences_that_must_be(variant):
    options = VARIANTS[variant]
    deployment, pulumi_of, evaluation, doc = build_both(options)
    resources = doc["Resources"]
    function = evaluation.value(resources["AggregatorFunction"]["Properties"])
    # The template's inline code is index.py; the component keeps the handler its functions always had.
    assert (function["Handler"], pulumi_of["AggregatorFunction"].inputs["handler"]) == (TEMPLATE_HANDLER, HANDLER)
    assert function["Code"] == {"ZipFile": PLACEHOLDER_CODE}  # with CodeS3Bucket empty, its default
    # The mapping names the same function: by name in the template, by ARN in the component.
    mapping = evaluation.value(resources["AggregatorStreamMapping"]["Properties"])
    aggregator = pulumi_of["AggregatorFunction"]
    assert mapping["FunctionName"] == aggregator.outputs["name"]
    assert pulumi_of["AggregatorStreamMapping"].inputs["functionName"] == aggregator.outputs["arn"]
    # The role's policy: inline in the role, named; in Pulumi a RolePolicy of that role, autonamed.
    role = evaluation.value(resources["AggregatorRole"]["Properties"])
    (inline,) = role["Policies"]
    role_policy = deployment.one(ROLE_POLICY.pulumi)
    assert inline["PolicyName"] == INLINE_POLICY_NAME and "name" not in role_policy.inputs
    assert role_policy.inputs["role"] == pulumi_of["AggregatorRole"].outputs["name"]
    assert inline["PolicyDocument"] == json.loads(role_policy.inputs["policy"])
    # A role name prefix: both keep it, and add a unique part of their own (IAM is global).
    if options.role_name_prefix:
        stack_uuid_head = STACK_ID.rpartition("/")[2].split("-")[0]
        assert role["RoleName"] == f"{options.role_name_prefix}aggregator-{stack_uuid_head}"
        assert pulumi_of["AggregatorRole"].inputs["namePrefix"] == options.role_name_prefix
    else:
        assert "RoleName" not in role and "namePrefix" not in pulumi_of["AggregatorRole"].inputs


@pytest.mark.parametrize("variant", ["defaults", "everything"])
def test_both_order_the_function_after_its_log_group_and_policy(variant):
    """The description's depends_on, in each engine: Pulumi's dependencies, CloudFormation's DependsOn or a
    reference (the role's policy lives in the role there)."""
    deployment, pulumi_of, _, doc = build_both(VARIANTS[variant])
    urn_of = {(u.rpartition("::")[0].rpartition("$")[2].rpartition("::")[2], u.rpartition("::")[2]): u for u in deployment.urns}
    function = urn_of[("aws:lambda/function:Function", "limits-aggregator")]
    mapping = urn_of[("aws:lambda/eventSourceMapping:EventSourceMapping", "limits-aggregator-stream")]
    logs = urn_of[("aws:cloudwatch/logGroup:LogGroup", "limits-aggregator-logs")]
    policy = urn_of[("aws:iam/rolePolicy:RolePolicy", "limits-aggregator-policy")]
    assert {logs, policy} <= set(deployment.dependencies[function])
    assert policy in deployment.dependencies[mapping]
    resources = doc["Resources"]
    assert resources["AggregatorFunction"]["DependsOn"] == ["AggregatorLogs"]
    assert resources["AggregatorFunction"]["Properties"]["Role"] == {"Fn::GetAtt": ["AggregatorRole", "Arn"]}
    assert resources["AggregatorStreamMapping"]["DependsOn"] == ["AggregatorRole"]


def test_a_stack_named_like_the_table_gets_the_components_names():
    """The guide's stack `zae-limiter`: the function the guide's update-function-code names, its log group,
    the alarms; the same as the component's for a table of that name."""
    deployment, pulumi_of, evaluation, doc = build_both(VARIANTS["everything"])
    named = {
        "AggregatorFunction": "FunctionName", "AggregatorLogs": "LogGroupName",
        **{logical_id: "AlarmName" for logical_id, r in doc["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"},
    }
    assert len(named) == 8
    for logical_id, prop in named.items():
        ours = evaluation.value(doc["Resources"][logical_id]["Properties"][prop])
        assert ours == pulumi_of[logical_id].inputs["name"], logical_id
    assert pulumi_of["AggregatorFunction"].inputs["name"] == "zae-limiter-aggregator"
    assert pulumi_of["AggregatorLogs"].inputs["name"] == "/aws/lambda/zae-limiter-aggregator"


# CloudFormation's rule for stack names; up to 53 characters leave room for "-aggregator" in Lambda's 64.
STACK_NAMES = st.from_regex(r"[A-Za-z][-A-Za-z0-9]{0,52}", fullmatch=True)


@given(STACK_NAMES, st.sampled_from(["read-throttles", "aggregator-errors", "aggregator-dlq"]))
def test_the_templates_names_are_the_components_rule_for_its_root(stack, alarm):
    """The template writes the rule's pattern around ${AWS::StackName}; for every stack name it may have,
    that is what the rule gives (no character replaced, nothing cut)."""
    for rule, key in (("function", ""), ("log_group", ""), ("alarm", alarm)):
        assert names.pattern(rule, "${AWS::StackName}", key).replace("${AWS::StackName}", stack) == names.name(rule, stack, key)
    assert len(names.name("function", stack)) <= names.FUNCTION_NAME_MAX


@pytest.mark.parametrize("table", ["a.b", "rate_limits", "t" * 60])
def test_roots_the_template_never_has_get_a_valid_function_name(table):
    """A table name may hold `.` or be long; the component's rule makes a valid function of it, which no
    template function could (hence the template's root is the stack's name)."""
    function = names.name("function", table)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", function), function
    if table == "rate_limits":
        assert function == "rate_limits-aggregator"
    else:
        assert function != names.pattern("function", table)
