"""The stack description's settings (keyed by the Pulumi resource arguments) as CloudFormation properties,
per kind, with the property names of AWS's resource types; and what the template refers to another
resource's attribute by (`Ref` or `Fn::GetAtt`, as AWS documents each type's return values).

Every setting of a kind is named here, or `translate` refuses it: a setting added to the description cannot
be left out of the template unnoticed.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

from .stack_description import (
    ALARM,
    FUNCTION,
    LOG_GROUP,
    MAPPING,
    POLICY,
    QUEUE,
    ROLE,
    TABLE,
    Kind,
    Resource,
)

REF = "Ref"
# Per kind, what `Fn::GetAtt` gives each attribute, or REF where `Ref` gives it. A log group's ARN is
# written out instead (`LOG_GROUP_ARN`): its `Fn::GetAtt Arn` ends in `:*`, and the role's policy needs the
# group's ARN to add its own `:*` to.
ATTRIBUTES: Mapping[Kind, Mapping[str, str]] = {
    TABLE: {"name": REF, "arn": "Arn", "stream_arn": "StreamArn"},
    QUEUE: {"url": REF, "arn": "Arn", "name": "QueueName"},
    LOG_GROUP: {"name": REF},
    ROLE: {"id": REF, "name": REF, "arn": "Arn"},
    FUNCTION: {"name": REF, "arn": "Arn"},
    POLICY: {"arn": REF},
}
_REFERENCE = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9]+)?\}")


def camel(key: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[-_]", key))


def reference(kind: Kind, logical_id: str, attribute: str, log_group_arn: Callable[[], str]) -> Any:
    if kind is LOG_GROUP and attribute == "arn":
        return log_group_arn()
    target = ATTRIBUTES[kind][attribute]
    return {"Ref": logical_id} if target == REF else {"Fn::GetAtt": [logical_id, target]}


def reference_text(kind: Kind, logical_id: str, attribute: str, log_group_arn: Callable[[], str]) -> str:
    """The same reference inside an Fn::Sub."""
    if kind is LOG_GROUP and attribute == "arn":
        return log_group_arn()
    target = ATTRIBUTES[kind][attribute]
    return "${" + logical_id + ("" if target == REF else "." + target) + "}"


class Literal(str):
    """A string given by the user (a tag, an ARN, a name prefix): written as it is, never as an Fn::Sub,
    so nothing in it is ever substituted. (StackOptions refuses `$`, `{` and `}` in tags, as AWS does;
    a user's string is still never read as a template.)"""


def _tags(tags: Mapping[str, str]) -> Any:
    return [{"Key": Literal(key), "Value": Literal(value)} for key, value in sorted(tags.items())] or None


def _role_name(prefix: str) -> Any:
    # IAM is global: the prefix, then the first part of this stack's unique id, so the same stack name in
    # two regions never collides; at most 32 + 19 characters, within IAM's 64.
    stack_uuid = {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}
    return {"Fn::Join": ["", [prefix, "aggregator-", {"Fn::Select": [0, {"Fn::Split": ["-", stack_uuid]}]}]]}


def _table(s: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "TableName": s["name"],
        "BillingMode": s["billing_mode"],
        "KeySchema": [{"AttributeName": s["hash_key"], "KeyType": "HASH"}, {"AttributeName": s["range_key"], "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": a["name"], "AttributeType": a["type"]} for a in s["attributes"]],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index["name"],
                "KeySchema": [{"AttributeName": k["attribute_name"], "KeyType": k["key_type"]} for k in index["key_schemas"]],
                "Projection": {"ProjectionType": index["projection_type"]},
            }
            for index in s["global_secondary_indexes"]
        ],
        # A StreamSpecification is what turns the stream on (stream_enabled).
        "StreamSpecification": {"StreamViewType": s["stream_view_type"]} if s["stream_enabled"] else None,
        "SSESpecification": {"SSEEnabled": s["server_side_encryption"]["enabled"]},
        "TimeToLiveSpecification": {"AttributeName": s["ttl"]["attribute_name"], "Enabled": s["ttl"]["enabled"]},
        # The deployment guide's EnablePITR and PITRRecoveryDays parameters (whose defaults are the options).
        "PointInTimeRecoverySpecification": {
            "Fn::If": [
                "PITREnabled",
                {"PointInTimeRecoveryEnabled": True, "RecoveryPeriodInDays": {"Ref": "PITRRecoveryDays"}},
                {"PointInTimeRecoveryEnabled": False},
            ]
        },
        "DeletionProtectionEnabled": s["deletion_protection_enabled"],
        "Tags": _tags(s["tags"]),
    }


# Per kind: setting -> (property, conversion or None). The table has its own translation (`_table`).
PROPERTIES: Mapping[Kind, Mapping[str, tuple[str, Callable[[Any], Any] | None]]] = {
    QUEUE: {
        "message_retention_seconds": ("MessageRetentionPeriod", None),
        "sqs_managed_sse_enabled": ("SqsManagedSseEnabled", None),
        "tags": ("Tags", _tags),
    },
    LOG_GROUP: {"name": ("LogGroupName", None), "retention_in_days": ("RetentionInDays", None), "tags": ("Tags", _tags)},
    ROLE: {
        "assume_role_policy": ("AssumeRolePolicyDocument", None),
        "description": ("Description", None),
        "tags": ("Tags", _tags),
        "permissions_boundary": ("PermissionsBoundary", None),
        "name_prefix": ("RoleName", _role_name),
    },
    FUNCTION: {
        "name": ("FunctionName", None),
        "description": ("Description", None),
        "runtime": ("Runtime", None),
        "handler": ("Handler", None),
        "role": ("Role", None),
        "memory_size": ("MemorySize", None),
        "timeout": ("Timeout", None),
        "code": ("Code", None),
        "environment": ("Environment", lambda env: {"Variables": env["variables"]}),
        "tags": ("Tags", _tags),
    },
    MAPPING: {
        "event_source_arn": ("EventSourceArn", None),
        "function_name": ("FunctionName", None),
        "starting_position": ("StartingPosition", None),
        "batch_size": ("BatchSize", None),
        "maximum_batching_window_in_seconds": ("MaximumBatchingWindowInSeconds", None),
        "bisect_batch_on_function_error": ("BisectBatchOnFunctionError", None),
        "function_response_types": ("FunctionResponseTypes", None),
        "maximum_retry_attempts": ("MaximumRetryAttempts", None),
        "maximum_record_age_in_seconds": ("MaximumRecordAgeInSeconds", None),
        "destination_config": (
            "DestinationConfig", lambda config: {"OnFailure": {"Destination": config["on_failure"]["destination_arn"]}}
        ),
        "tags": ("Tags", _tags),
    },
    ALARM: {
        "name": ("AlarmName", None),
        "alarm_description": ("AlarmDescription", None),
        "namespace": ("Namespace", None),
        "metric_name": ("MetricName", None),
        "statistic": ("Statistic", None),
        "dimensions": ("Dimensions", lambda dims: [{"Name": name, "Value": value} for name, value in dims.items()]),
        "period": ("Period", None),
        "evaluation_periods": ("EvaluationPeriods", None),
        "comparison_operator": ("ComparisonOperator", None),
        "threshold": ("Threshold", None),
        "treat_missing_data": ("TreatMissingData", None),
        "alarm_actions": ("AlarmActions", None),
        "ok_actions": ("OKActions", None),
        "tags": ("Tags", _tags),
    },
    # AWS::IAM::ManagedPolicy has no Tags: the policies carry none in the template.
    POLICY: {"description": ("Description", None), "policy": ("PolicyDocument", None), "tags": ("", None)},
}
TABLE_SETTINGS = frozenset({
    "name", "billing_mode", "hash_key", "range_key", "attributes", "global_secondary_indexes", "stream_enabled",
    "stream_view_type", "ttl", "server_side_encryption", "point_in_time_recovery", "deletion_protection_enabled", "tags",
})


def translate(kind: Kind, settings: Mapping[str, Any], inline: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The properties of a resource of `kind`; `inline`: the settings of its inline policies (a role's)."""
    known = TABLE_SETTINGS if kind is TABLE else set(PROPERTIES[kind])
    unknown = sorted(set(settings) - known)
    if unknown:
        raise KeyError(f"{kind.cloudformation}: no property for the setting(s) {', '.join(unknown)}")
    if kind is TABLE:
        found = _table(settings)
    else:
        found = {}
        for key, value in settings.items():
            target, convert = PROPERTIES[kind][key]
            if target and value is not None:
                found[target] = convert(value) if convert else value
    if inline:
        found["Policies"] = [{"PolicyName": policy["name"], "PolicyDocument": policy["policy"]} for policy in inline]
    return {key: value for key, value in found.items() if value is not None}


def referenced(value: Any) -> set[str]:
    """The logical ids `value` refers to (Ref, Fn::GetAtt, `${Id}` or `${Id.Attribute}` in a text)."""
    if isinstance(value, dict):
        found = set()
        if "Ref" in value and isinstance(value["Ref"], str):
            found.add(value["Ref"])
        if "Fn::GetAtt" in value:
            found.add(value["Fn::GetAtt"][0])
        return found.union(*(referenced(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(referenced(item) for item in value))
    if isinstance(value, str):
        return set(_REFERENCE.findall(value))
    return set()


def depends_on(resource: Resource, by_part: Mapping[str, Resource], properties: Mapping[str, Any]) -> list[str]:
    """The resource's DependsOn: what the description orders it after, less what its properties refer to
    already (CloudFormation orders those itself; cfn-lint calls a DependsOn on them obsolete)."""
    ids = dict.fromkeys(by_part[part].logical_id for part in resource.depends_on)
    implied = referenced(properties)
    return [logical_id for logical_id in ids if logical_id not in implied and logical_id != resource.logical_id]


def policies(kind: Kind, keep_table: bool) -> dict[str, Any]:
    """A replacement never deletes the old table's data; with deletion protection, neither does deleting
    the stack (the table stays, and CloudFormation says so in the stack's events)."""
    if kind is not TABLE:
        return {}
    return {"DeletionPolicy": "Retain" if keep_table else "Delete", "UpdateReplacePolicy": "Retain"}
