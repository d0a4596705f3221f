"""The same infrastructure as a CloudFormation template (`zae-limiter cfn-template`), for teams whose
deployments go through CloudFormation.

It is generated from the sources the Pulumi component reads (the table layout of `zae_limiter.core.schema`, the
IAM manifest of `zae_limiter.iam`, `aggregator_settings.py`, `alarm_specs.py`), so the two deploy the same
table, function, mapping, queue, alarms and policies. The deployment guide's parameters stay parameters
(`TableName`, `SnapshotWindows`, `SnapshotRetentionDays`, `EnablePITR`, `LogRetentionDays`, plus
`PITRRecoveryDays` and the code's `CodeS3Bucket`/`CodeS3Key`); the rest of `StackOptions` (aggregator,
alarms, memory, timeout, boundary, deletion protection, tags) is fixed when the template is written, as the
CLI's options say.

Names come from the stack's name, so the guide's commands work as written: with `--stack-name zae-limiter`
the function is `zae-limiter-aggregator` (Lambda allows 64 characters: stack names up to 53). With a role
name prefix the role is `<prefix>aggregator-<part of the stack id>`: IAM is global. The function's code is uploaded after the stack (`zae-limiter
lambda-export` then `aws lambda update-function-code`), or named in S3 with `CodeS3Bucket`/`CodeS3Key`;
until then it holds a placeholder that fails every batch, so stream records are retried and then reported
to the failure queue: upload the code before traffic arrives, or deploy with the S3 parameters.

Plain data, no Pulumi import: the CLI writes it without the deploy extra.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from zae_limiter import __version__, iam
from zae_limiter.core.schema import TABLE, create_table_request, WINDOWS
from zae_limiter.stack_options import LOG_RETENTION_DAYS, StackOptions, check_table_name

from .aggregator_settings import (
    BATCH_SIZE,
    BATCHING_WINDOW_S,
    DLQ_RETENTION_S,
    LAMBDA_ASSUME_ROLE,
    MAX_RECORD_AGE_S,
    MAX_RETRY_ATTEMPTS,
    STARTING_POSITION,
    role_policy,
)
from .alarm_specs import PERIOD_S, AlarmSpec, aggregator_alarm_specs, table_alarm_specs
from .lambda_package import RUNTIME

FORMAT_VERSION = "2010-09-09"
# CloudFormation writes inline code as index.py; the lambda-export zip carries an index.py that loads the
# aggregator (lambda_package.ENTRY_POINT), so the placeholder and the real code share this setting.
HANDLER = "index.handler"
DEFAULT_PITR_DAYS = 35  # the period when EnablePITR=true and none was chosen: DynamoDB's default
FUNCTION_NAME = "${AWS::StackName}-aggregator"
LOG_GROUP_NAME = f"/aws/lambda/{FUNCTION_NAME}"
RETENTION_DAYS_PATTERN = "([1-9][0-9]{0,2}|[12][0-9]{3}|3[0-5][0-9]{2}|36[0-4][0-9]|3650)"
LOG_GROUP_ARN = f"arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{LOG_GROUP_NAME}"

# The function's environment variables and the parameters they come from.
ENVIRONMENT_PARAMETERS = {"SNAPSHOT_WINDOWS": "SnapshotWindows", "SNAPSHOT_RETENTION_DAYS": "SnapshotRetentionDays"}

# Logical ids of the resources, and of the outputs by the component's output keys.
TABLE_ID = "Table"
DLQ_ID = "AggregatorDLQ"
LOGS_ID = "AggregatorLogs"
ROLE_ID = "AggregatorRole"
FUNCTION_ID = "AggregatorFunction"
MAPPING_ID = "AggregatorStreamMapping"
POLICY_IDS = {"acquire": "AcquirePolicy", "full": "FullAccessPolicy", "read_only": "ReadOnlyPolicy"}

PLACEHOLDER_CODE = '''"""zae-limiter usage aggregator: placeholder until its code is uploaded.

    zae-limiter lambda-export --output lambda.zip
    aws lambda update-function-code --function-name <this function> --zip-file fileb://lambda.zip
"""


def handler(event, context):
    # Failing the batch (rather than dropping it) makes Lambda retry it, and then report it to the queue.
    raise RuntimeError("zae-limiter aggregator: its code is not uploaded yet; run zae-limiter lambda-export "
                       "--output lambda.zip, then aws lambda update-function-code --zip-file fileb://lambda.zip")
'''


def _camel(key: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[-_]", key))


class Literal(str):
    """A string given by the user (a tag, an ARN, a name prefix): written as it is, never as an Fn::Sub,
    so nothing in it is ever substituted. (StackOptions refuses `$`, `{` and `}` in tags, as AWS does;
    a user's string is still never read as a template.)"""


def _sub(value: Any) -> Any:
    """Every string of the template's own that names a parameter, attribute or pseudo parameter (`${...}`)
    as an Fn::Sub; Literal strings as they are."""
    if isinstance(value, Literal):
        return str(value)
    if isinstance(value, str):
        return {"Fn::Sub": value} if "${" in value else value
    if isinstance(value, dict):
        return {key: _sub(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_sub(item) for item in value]
    return value


def _tags(options: StackOptions) -> dict[str, Any]:
    tags = sorted(options.tags.items())
    return {"Tags": [{"Key": Literal(key), "Value": Literal(value)} for key, value in tags]} if tags else {}


def window_choices() -> list[str]:
    """Every comma-separated list of distinct windows."""
    return [",".join(chosen) for size in range(1, len(WINDOWS) + 1) for chosen in itertools.permutations(WINDOWS, size)]


AGGREGATOR_PARAMETERS = ("SnapshotWindows", "SnapshotRetentionDays", "LogRetentionDays", "CodeS3Bucket", "CodeS3Key")


def parameters(options: StackOptions, table_name: str) -> dict[str, Any]:
    """The template's parameters; without the aggregator, only the table's (a parameter that nothing
    reads would be accepted and silently do nothing)."""
    every = {
        "TableName": {
            "Type": "String", "Default": table_name, "AllowedPattern": "[A-Za-z0-9_.-]{3,255}",
            "Description": "DynamoDB table name",
        },
        # Every value the aggregator accepts and no other: a value it refused would fail every batch.
        "SnapshotWindows": {
            "Type": "String", "Default": options.snapshot_windows, "AllowedValues": window_choices(),
            "Description": f"Usage aggregation windows, comma-separated: {', '.join(WINDOWS)}",
        },
        "SnapshotRetentionDays": {  # a String: a Number would let 90.5 or 1e2 through, which the aggregator refuses
            "Type": "String", "Default": str(options.snapshot_retention_days), "AllowedPattern": RETENTION_DAYS_PATTERN,
            "ConstraintDescription": "a whole number of days from 1 to 3650",
            "Description": "Days usage snapshots are kept (their TTL), 1 to 3650",
        },
        "EnablePITR": {
            "Type": "String", "Default": "true" if options.pitr_recovery_days else "false",
            "AllowedValues": ["true", "false"], "Description": "Point-in-time recovery of the table",
        },
        "PITRRecoveryDays": {
            "Type": "Number", "Default": str(options.pitr_recovery_days or DEFAULT_PITR_DAYS), "MinValue": 1,
            "MaxValue": 35, "Description": "Point-in-time recovery period in days, with EnablePITR=true",
        },
        "LogRetentionDays": {
            "Type": "Number", "Default": str(options.log_retention_days),
            "AllowedValues": [str(days) for days in LOG_RETENTION_DAYS],
            "Description": "CloudWatch log retention of the aggregator",
        },
        "CodeS3Bucket": {
            "Type": "String", "Default": "",
            "Description": "S3 bucket holding the aggregator's code (zae-limiter lambda-export); empty: upload it later",
        },
        "CodeS3Key": {"Type": "String", "Default": "lambda.zip", "Description": "S3 key of the aggregator's code zip"},
    }
    if options.enable_aggregator:
        return every
    return {name: value for name, value in every.items() if name not in AGGREGATOR_PARAMETERS}


def table_resource(options: StackOptions) -> dict[str, Any]:
    request = create_table_request("${TableName}")
    properties = {
        "TableName": {"Ref": "TableName"},
        "BillingMode": request["BillingMode"],
        "KeySchema": request["KeySchema"],
        "AttributeDefinitions": request["AttributeDefinitions"],
        "GlobalSecondaryIndexes": request["GlobalSecondaryIndexes"],
        "StreamSpecification": {"StreamViewType": request["StreamSpecification"]["StreamViewType"]},
        "SSESpecification": {"SSEEnabled": request["SSESpecification"]["Enabled"]},
        "TimeToLiveSpecification": {"AttributeName": TABLE.ttl_attribute, "Enabled": True},
        "PointInTimeRecoverySpecification": {
            "Fn::If": [
                "PITREnabled",
                {"PointInTimeRecoveryEnabled": True, "RecoveryPeriodInDays": {"Ref": "PITRRecoveryDays"}},
                {"PointInTimeRecoveryEnabled": False},
            ]
        },
        "DeletionProtectionEnabled": options.deletion_protection,
        **_tags(options),
    }
    # A replacement never deletes the old table's data; with deletion protection, neither does deleting
    # the stack (the table stays, and CloudFormation says so in the stack's events).
    keep = "Retain" if options.deletion_protection else "Delete"
    return {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": keep, "UpdateReplacePolicy": "Retain", "Properties": properties}


def aggregator_resources(options: StackOptions) -> dict[str, Any]:
    role: dict[str, Any] = {
        "AssumeRolePolicyDocument": json.loads(LAMBDA_ASSUME_ROLE),
        "Description": "zae-limiter usage aggregator of table ${TableName}",
        "Policies": [
            {
                "PolicyName": "zae-limiter-aggregator",
                "PolicyDocument": role_policy(
                    f"${{{TABLE_ID}.Arn}}", f"${{{TABLE_ID}.StreamArn}}", LOG_GROUP_ARN, f"${{{DLQ_ID}.Arn}}"
                ),
            }
        ],
        **_tags(options),
    }
    if options.permission_boundary:
        role["PermissionsBoundary"] = Literal(options.permission_boundary)
    if options.role_name_prefix:
        # IAM is global: the prefix, then the first part of this stack's unique id, so the same stack name
        # in two regions never collides; at most 32 + 19 characters, within IAM's 64.
        stack_uuid = {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}
        role["RoleName"] = {
            "Fn::Join": ["", [Literal(options.role_name_prefix), "aggregator-", {"Fn::Select": [0, {"Fn::Split": ["-", stack_uuid]}]}]]
        }
    return {
        DLQ_ID: {
            "Type": "AWS::SQS::Queue",
            "Properties": {"MessageRetentionPeriod": DLQ_RETENTION_S, "SqsManagedSseEnabled": True, **_tags(options)},
        },
        LOGS_ID: {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"LogGroupName": LOG_GROUP_NAME, "RetentionInDays": {"Ref": "LogRetentionDays"}, **_tags(options)},
        },
        ROLE_ID: {"Type": "AWS::IAM::Role", "Properties": role},
        FUNCTION_ID: {
            "Type": "AWS::Lambda::Function",
            # After the log group, so Lambda never creates one without retention (the role, with its policy,
            # comes first through the Role attribute).
            "DependsOn": [LOGS_ID],
            "Properties": {
                "FunctionName": FUNCTION_NAME,
                "Description": "zae-limiter: usage snapshots of table ${TableName} from its stream",
                "Runtime": RUNTIME,
                "Handler": HANDLER,
                "Role": {"Fn::GetAtt": [ROLE_ID, "Arn"]},
                "MemorySize": options.lambda_memory_mb,
                "Timeout": options.lambda_timeout_s,
                "Code": {
                    "Fn::If": [
                        "CodeInS3",
                        {"S3Bucket": {"Ref": "CodeS3Bucket"}, "S3Key": {"Ref": "CodeS3Key"}},
                        {"ZipFile": PLACEHOLDER_CODE},
                    ]
                },
                # As Fn::Sub: a variable is a string, whatever the parameter's type.
                "Environment": {"Variables": {name: f"${{{param}}}" for name, param in ENVIRONMENT_PARAMETERS.items()}},
                **_tags(options),
            },
        },
        MAPPING_ID: {
            "Type": "AWS::Lambda::EventSourceMapping",
            "DependsOn": [ROLE_ID],  # Lambda checks that the role can read the stream
            "Properties": {
                "EventSourceArn": {"Fn::GetAtt": [TABLE_ID, "StreamArn"]},
                "FunctionName": {"Ref": FUNCTION_ID},
                "StartingPosition": STARTING_POSITION,
                "BatchSize": BATCH_SIZE,
                "MaximumBatchingWindowInSeconds": BATCHING_WINDOW_S,
                "BisectBatchOnFunctionError": True,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "MaximumRetryAttempts": MAX_RETRY_ATTEMPTS,
                "MaximumRecordAgeInSeconds": MAX_RECORD_AGE_S,
                "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [DLQ_ID, "Arn"]}}},
                **_tags(options),
            },
        },
    }


def alarm_resources(options: StackOptions) -> dict[str, Any]:
    specs = table_alarm_specs("${TableName}")
    if options.enable_aggregator:
        specs += aggregator_alarm_specs("${TableName}", FUNCTION_NAME, options.lambda_timeout_s, f"${{{DLQ_ID}.QueueName}}")
    actions = [Literal(options.alarm_sns_topic_arn)] if options.alarm_sns_topic_arn else []
    return {f"{_camel(spec.key)}Alarm": _alarm(spec, actions, options) for spec in specs}


def _alarm(spec: AlarmSpec, actions: list[str], options: StackOptions) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": f"${{AWS::StackName}}-{spec.key}",
            "AlarmDescription": spec.description,
            "Namespace": spec.namespace,
            "MetricName": spec.metric_name,
            "Statistic": spec.statistic,
            "Dimensions": [{"Name": name, "Value": value} for name, value in spec.dimensions.items()],
            "Period": PERIOD_S,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": spec.threshold,
            "TreatMissingData": "notBreaching",
            "AlarmActions": actions,
            "OKActions": actions,
            **_tags(options),
        },
    }


def policy_resources() -> dict[str, Any]:
    return {
        POLICY_IDS[role]: {
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {
                "Description": f"zae-limiter on table ${{TableName}}: {purpose}",
                "PolicyDocument": iam.policy_document(role, f"${{{TABLE_ID}.Arn}}"),
            },
        }
        for role, (_, _, purpose) in iam.APPLICATION_POLICIES.items()
    }


def outputs(options: StackOptions) -> dict[str, Any]:
    """The component's outputs (`OUTPUT_KEYS`), named in CamelCase; the aggregator's only with it."""
    values: dict[str, Any] = {
        "table_name": {"Ref": TABLE_ID},
        "table_arn": {"Fn::GetAtt": [TABLE_ID, "Arn"]},
        "stream_arn": {"Fn::GetAtt": [TABLE_ID, "StreamArn"]},
    }
    if options.enable_aggregator:
        values.update(
            function_name={"Ref": FUNCTION_ID},
            function_arn={"Fn::GetAtt": [FUNCTION_ID, "Arn"]},
            log_group_name={"Ref": LOGS_ID},
            dlq_url={"Ref": DLQ_ID},
        )
    for role, (key, _, _) in iam.APPLICATION_POLICIES.items():
        values[key] = {"Ref": POLICY_IDS[role]}
    return {_camel(key): {"Description": key, "Value": value} for key, value in values.items()}


def conditions(options: StackOptions) -> dict[str, Any]:
    found: dict[str, Any] = {"PITREnabled": {"Fn::Equals": [{"Ref": "EnablePITR"}, "true"]}}
    if options.enable_aggregator:
        found["CodeInS3"] = {"Fn::Not": [{"Fn::Equals": [{"Ref": "CodeS3Bucket"}, ""]}]}
    return found


def template(options: StackOptions | None = None, table_name: str = "rate_limits") -> dict[str, Any]:
    """The template for `options` (default: every default); `table_name` is the TableName parameter's
    default."""
    options = StackOptions() if options is None else options
    if not isinstance(options, StackOptions):
        raise TypeError(f"options must be a StackOptions, got {type(options).__name__}")
    check_table_name(table_name)
    resources = {TABLE_ID: table_resource(options)}
    if options.enable_aggregator:
        resources.update(aggregator_resources(options))
    if options.enable_alarms:
        resources.update(alarm_resources(options))
    resources.update(policy_resources())
    return _sub(
        {
            "AWSTemplateFormatVersion": FORMAT_VERSION,
            "Description": f"zae-limiter {__version__}: rate limiter table, usage aggregator and IAM policies",
            "Parameters": parameters(options, table_name),
            "Conditions": conditions(options),
            "Resources": resources,
            "Outputs": outputs(options),
        }
    )


def template_json(options: StackOptions | None = None, table_name: str = "rate_limits") -> str:
    """The template as text: JSON, which CloudFormation reads whatever the file is called (JSON is YAML)."""
    return json.dumps(template(options, table_name), indent=2) + "\n"
