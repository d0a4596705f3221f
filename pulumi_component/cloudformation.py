"""The same infrastructure as a CloudFormation template (`zae-limiter cfn-template`), for teams whose
deployments go through CloudFormation.

It is made from the stack description the Pulumi component is made from (`stack_description.py`): the same
resources with the same settings, translated to CloudFormation's properties here.
tests/test_stack_description.py builds both and checks that they agree. The deployment guide's settings
stay parameters (`TableName`, `SnapshotWindows`, `SnapshotRetentionDays`, `EnablePITR`,
`LogRetentionDays`, plus `PITRRecoveryDays` and the code's `CodeS3Bucket`/`CodeS3Key`), with the options
as their defaults; the rest of `StackOptions` (aggregator, alarms, memory, timeout, boundary, deletion
protection, tags) is fixed when the template is written, as the CLI's options say.

Names come from the stack's name (why: stack_description.py), so the guide's commands work as written:
with `--stack-name zae-limiter` the function is `zae-limiter-aggregator` (Lambda allows 64 characters:
stack names up to 53). With a role name prefix the role is `<prefix>aggregator-<part of the stack id>`:
IAM is global. The function's code is uploaded after the stack (`zae-limiter lambda-export` then `aws
lambda update-function-code`), or named in S3 with `CodeS3Bucket`/`CodeS3Key`; until then it holds a
placeholder that fails every batch, so stream records are retried and then reported to the failure queue:
upload the code before traffic arrives, or deploy with the S3 parameters.

Plain data, no Pulumi import: the CLI writes it without the deploy extra.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from zae_limiter import __version__
from zae_limiter.core.schema import WINDOWS
from zae_limiter.stack_defaults import CODE_ARCHIVE, PITR_DAYS_WHEN_ENABLED, TABLE_NAME
from zae_limiter.stack_options import LOG_RETENTION_DAYS, StackOptions, check_table_name

from . import cfn_properties, names
from .cfn_properties import Literal
from .deferred import AggregatorCode, Attribute, Document, Name, Option, PerEngine, Text, walk
from .stack_description import OUTPUTS, ROLE_POLICY, TEMPLATE_HANDLER, Resource, describe

FORMAT_VERSION = "2010-09-09"
HANDLER = TEMPLATE_HANDLER
STACK_NAME = "${AWS::StackName}"  # the template's name root
RETENTION_DAYS_PATTERN = "([1-9][0-9]{0,2}|[12][0-9]{3}|3[0-5][0-9]{2}|36[0-4][0-9]|3650)"
# The options that are template parameters, by parameter. (EnablePITR and PITRRecoveryDays too: the table's
# point-in-time recovery, cfn_properties.table.)
PARAMETER_OF_OPTION = {
    "table_name": "TableName",
    "snapshot_windows": "SnapshotWindows",
    "snapshot_retention_days": "SnapshotRetentionDays",
    "log_retention_days": "LogRetentionDays",
}
AGGREGATOR_PARAMETERS = ("SnapshotWindows", "SnapshotRetentionDays", "LogRetentionDays", "CodeS3Bucket", "CodeS3Key")

PLACEHOLDER_CODE = '''"""zae-limiter usage aggregator: placeholder until its code is uploaded.

    zae-limiter lambda-export --output lambda.zip
    aws lambda update-function-code --function-name <this function> --zip-file fileb://lambda.zip
"""


def handler(event, context):
    # Failing the batch (rather than dropping it) makes Lambda retry it, and then report it to the queue.
    raise RuntimeError("zae-limiter aggregator: its code is not uploaded yet; run zae-limiter lambda-export "
                       "--output lambda.zip, then aws lambda update-function-code --zip-file fileb://lambda.zip")
'''
CODE = {
    "Fn::If": [
        "CodeInS3",
        {"S3Bucket": {"Ref": "CodeS3Bucket"}, "S3Key": {"Ref": "CodeS3Key"}},
        {"ZipFile": PLACEHOLDER_CODE},
    ]
}


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


class Filler:
    """Fills the description's deferred values for the template: the options (parameters where they are
    ones), `Ref`/`Fn::GetAtt` for attributes (or `${...}` inside a text), names around the stack's name."""

    def __init__(self, options: StackOptions, resources: list[Resource]) -> None:
        self.options = options
        self.by_part = {resource.part: resource for resource in resources}

    def value(self, value: Any) -> Any:
        return walk(value, self._fill)

    def _fill(self, value: Any) -> Any:
        if isinstance(value, Option):
            if value.name in PARAMETER_OF_OPTION:
                return {"Ref": PARAMETER_OF_OPTION[value.name]}
            given = getattr(self.options, value.name)
            return Literal(given) if isinstance(given, str) else given
        if isinstance(value, Attribute):
            resource = self.by_part[value.part]
            return cfn_properties.reference(resource.kind, resource.logical_id, value.name, self._log_group_arn)
        if isinstance(value, (Name, Text, Document)):
            return self._text(value)
        if isinstance(value, AggregatorCode):
            return CODE
        if isinstance(value, PerEngine):
            return self.value(value.cloudformation)
        raise TypeError(f"not a deferred value: {value!r}")

    def _text(self, value: Any) -> Any:
        """A value as it reads inside an Fn::Sub: `${Parameter}`, `${Id.Attribute}`, `${AWS::StackName}-...`."""
        if isinstance(value, Option):
            if value.name in PARAMETER_OF_OPTION:
                return "${" + PARAMETER_OF_OPTION[value.name] + "}"
            return str(getattr(self.options, value.name))
        if isinstance(value, Attribute):
            resource = self.by_part[value.part]
            return cfn_properties.reference_text(resource.kind, resource.logical_id, value.name, self._log_group_arn)
        if isinstance(value, Name):
            return names.pattern(value.rule, STACK_NAME, value.key)
        if isinstance(value, Text):
            return value.pattern.format(**{key: self._text(part) for key, part in value.parts.items()})
        if isinstance(value, Document):
            return value.build(*(self._text(part) for part in value.parts))
        return value

    @staticmethod
    def _log_group_arn() -> str:
        return f"arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{names.pattern('log_group', STACK_NAME)}"


def window_choices() -> list[str]:
    """Every comma-separated list of distinct windows."""
    return [",".join(chosen) for size in range(1, len(WINDOWS) + 1) for chosen in itertools.permutations(WINDOWS, size)]


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
            "Type": "Number", "Default": str(options.pitr_recovery_days or PITR_DAYS_WHEN_ENABLED), "MinValue": 1,
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
        "CodeS3Key": {"Type": "String", "Default": CODE_ARCHIVE, "Description": "S3 key of the aggregator's code zip"},
    }
    if options.enable_aggregator:
        return every
    return {name: value for name, value in every.items() if name not in AGGREGATOR_PARAMETERS}


def conditions(options: StackOptions) -> dict[str, Any]:
    found: dict[str, Any] = {"PITREnabled": {"Fn::Equals": [{"Ref": "EnablePITR"}, "true"]}}
    if options.enable_aggregator:
        found["CodeInS3"] = {"Fn::Not": [{"Fn::Equals": [{"Ref": "CodeS3Bucket"}, ""]}]}
    return found


def resources(options: StackOptions) -> dict[str, Any]:
    """The described resources, translated; the role's policy inline in the role (stack_description.ROLE_POLICY)."""
    described = describe(options)
    fill = Filler(options, described)
    settings = {resource.part: fill.value(dict(resource.settings)) for resource in described}
    inline: dict[str, list[dict[str, Any]]] = {}
    for resource in described:
        if resource.kind is ROLE_POLICY:
            inline.setdefault(resource.logical_id, []).append(settings[resource.part])
    found: dict[str, Any] = {}
    for resource in described:
        if resource.kind is ROLE_POLICY:
            continue
        properties = cfn_properties.translate(resource.kind, settings[resource.part], inline.get(resource.logical_id, []))
        entry: dict[str, Any] = {"Type": resource.kind.cloudformation}
        depends = cfn_properties.depends_on(resource, fill.by_part, properties)
        if depends:
            entry["DependsOn"] = depends
        entry.update(cfn_properties.policies(resource.kind, options.deletion_protection))
        entry["Properties"] = properties
        found[resource.logical_id] = entry
    return found


def outputs(options: StackOptions) -> dict[str, Any]:
    """The component's outputs (`OUTPUT_KEYS`), named in CamelCase; the aggregator's only with it."""
    described = describe(options)
    present = {resource.part for resource in described}
    fill = Filler(options, described)
    return {
        cfn_properties.camel(key): {"Description": key, "Value": fill.value(ref)}
        for key, ref in OUTPUTS.items()
        if ref.part in present
    }


def template(options: StackOptions | None = None, table_name: str = TABLE_NAME) -> dict[str, Any]:
    """The template for `options` (default: every default); `table_name` is the TableName parameter's
    default."""
    options = StackOptions() if options is None else options
    if not isinstance(options, StackOptions):
        raise TypeError(f"options must be a StackOptions, got {type(options).__name__}")
    check_table_name(table_name)
    return _sub(
        {
            "AWSTemplateFormatVersion": FORMAT_VERSION,
            "Description": f"zae-limiter {__version__}: rate limiter table, usage aggregator and IAM policies",
            "Parameters": parameters(options, table_name),
            "Conditions": conditions(options),
            "Resources": resources(options),
            "Outputs": outputs(options),
        }
    )


def template_json(options: StackOptions | None = None, table_name: str = TABLE_NAME) -> str:
    """The template as text: JSON, which CloudFormation reads whatever the file is called (JSON is YAML)."""
    return json.dumps(template(options, table_name), indent=2) + "\n"


__all__ = ["HANDLER", "Literal", "PLACEHOLDER_CODE", "template", "template_json", "window_choices"]
