"""One description of the stack: the resources of a zae-limiter deployment, their names and their settings.
The Pulumi component (`component.py`, `aggregator.py`, through `build.py`) and the CloudFormation template
(`cloudformation.py`) are both made from `describe(options)`; tests/test_stack_description.py builds both
and checks that they agree, resource by resource and setting by setting.

Plain data, no Pulumi import: the CLI writes the template without the deploy extra. Settings are keyed by
the Pulumi resource arguments (`message_retention_seconds`); the template translates them to its
properties (`MessageRetentionPeriod`). Values an engine fills in its own way (an option, another resource's
attribute, a physical name, a text or policy made of those) are the values of `deferred.py`.

Physical names. The names a person types or reads in a console (the function, its log group, the alarms)
follow the same rules in both (`names.py`: `<root>-aggregator`, `<root>-<alarm>`) around a name root,
which differs, and must:
- the component's root is the table name. A table name is unique in its account and region, where these
  names must be unique; a Pulumi stack name is not (two projects or backends may each have a `dev`).
- the template's root is the CloudFormation stack name, which is unique in its account and region too.
  The table name cannot be it: it is a template parameter, and may hold a `.` that Lambda refuses, which
  CloudFormation has no function to replace. It is also what the deployment guide relies on: stack
  `zae-limiter`, then `aws lambda update-function-code --function-name zae-limiter-aggregator`.
A template deployed as a stack named like the table gets exactly the component's names (tested).
Names that must be unique across regions (the IAM role and the managed policies) or that nobody types (the
queue, the role's inline policy) are left to each engine: Pulumi's `<logical name>-<random>`,
CloudFormation's `<stack>-<logical id>-<random>`; a role name prefix is kept by both.

Logical names are each engine's own and stay as existing stacks have them: a changed one would make
Pulumi or CloudFormation replace the resource (the table among them). In Pulumi, `<component>-<part>`; in
the template, `logical_id`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Mapping

from zae_limiter import iam
from zae_limiter.core.schema import TABLE as LAYOUT

from .aggregator_settings import (
    BATCH_SIZE,
    BATCHING_WINDOW_S,
    DLQ_RETENTION_S,
    MAX_RECORD_AGE_S,
    MAX_RETRY_ATTEMPTS,
    STARTING_POSITION,
    environment,
    role_policy,
    trust_policy,
)
from .alarm_specs import (
    COMPARISON,
    EVALUATION_PERIODS,
    MISSING_DATA,
    PERIOD_S,
    AlarmSpec,
    aggregator_alarm_specs,
    table_alarm_specs,
)
from .deferred import AggregatorCode, Attribute, Document, Name, Option, PerEngine, Text
from .lambda_package import HANDLER, RUNTIME


@dataclass(frozen=True)
class Kind:
    pulumi: str  # the Pulumi type token
    cloudformation: str  # the CloudFormation resource type


TABLE = Kind("aws:dynamodb/table:Table", "AWS::DynamoDB::Table")
QUEUE = Kind("aws:sqs/queue:Queue", "AWS::SQS::Queue")
LOG_GROUP = Kind("aws:cloudwatch/logGroup:LogGroup", "AWS::Logs::LogGroup")
ROLE = Kind("aws:iam/role:Role", "AWS::IAM::Role")
# In the template the role's policy is inline in the role (its `Policies`), as every stack made from earlier
# templates has it: an AWS::IAM::RolePolicy of the same name would be deleted with the old inline policy in
# the update's clean-up, leaving the role without it.
ROLE_POLICY = Kind("aws:iam/rolePolicy:RolePolicy", "AWS::IAM::Role")
FUNCTION = Kind("aws:lambda/function:Function", "AWS::Lambda::Function")
MAPPING = Kind("aws:lambda/eventSourceMapping:EventSourceMapping", "AWS::Lambda::EventSourceMapping")
ALARM = Kind("aws:cloudwatch/metricAlarm:MetricAlarm", "AWS::CloudWatch::Alarm")
POLICY = Kind("aws:iam/policy:Policy", "AWS::IAM::ManagedPolicy")
KINDS = (TABLE, QUEUE, LOG_GROUP, ROLE, ROLE_POLICY, FUNCTION, MAPPING, ALARM, POLICY)

# The components that own the resources: in Pulumi, ZaeLimiter and its child ZaeLimiterAggregator.
LIMITER = "limiter"
AGGREGATOR = "aggregator"

# Parts: the resources' names within the description (and the suffix of their Pulumi logical names).
# The aggregator's all start with AGGREGATOR_PART, the name of the aggregator component under ZaeLimiter.
TABLE_PART = "table"
AGGREGATOR_PART = "aggregator"
DLQ_PART = "aggregator-dlq"
LOGS_PART = "aggregator-logs"
ROLE_PART = "aggregator-role"
ROLE_POLICY_PART = "aggregator-policy"
FUNCTION_PART = AGGREGATOR_PART  # the function is the aggregator's main resource: it takes its name
MAPPING_PART = "aggregator-stream"

# CloudFormation requires a name for an inline policy; Pulumi's is autonamed, as existing stacks have it
# (naming it now would replace it in every one of them). It is unique within its role, and nobody types it.
INLINE_POLICY_NAME = "zae-limiter-aggregator"
# CloudFormation writes inline code (the placeholder until the code is uploaded) as index.py, so the
# template's function runs index.handler (the archive carries an index.py that loads aggregator.handler).
# The component keeps the handler its functions have always had: changing it would update every one.
TEMPLATE_HANDLER = "index.handler"

_TABLE_NAME = {"table": Option("table_name")}
_TAGS = Option("tags")


@dataclass(frozen=True)
class Resource:
    part: str  # unique within the description
    logical_id: str  # in the template
    kind: Kind
    owner: str  # LIMITER or AGGREGATOR
    settings: Mapping[str, Any]
    depends_on: tuple[str, ...] = field(default=())  # parts created before it, beyond the ones it refers to
    pulumi_suffix: str = ""  # of its Pulumi logical name, when not its part

    @property
    def suffix(self) -> str:
        """Its Pulumi logical name is `<component>-<suffix>`."""
        return self.pulumi_suffix or self.part


def describe(options: Any) -> list[Resource]:
    """The resources of a configuration. `options` has the StackOptions fields (a StackOptions, or the
    component's ZaeLimiterArgs, whose table name, tags, topic and boundary may be Outputs: those are only
    passed on, never read, here)."""
    resources = [table(options)]
    if options.enable_aggregator:
        resources += aggregator()
    resources += application_policies()
    if options.enable_alarms:
        specs = table_alarm_specs()
        if options.enable_aggregator:
            specs += aggregator_alarm_specs(options.lambda_timeout_s, DLQ_PART)
        actions = [Option("alarm_sns_topic_arn")] if options.alarm_sns_topic_arn is not None else []
        resources += [alarm(spec, actions) for spec in specs]
    return resources


def table(options: Any) -> Resource:
    days = options.pitr_recovery_days
    return Resource(TABLE_PART, "Table", TABLE, LIMITER, {
        "name": Option("table_name"),
        "billing_mode": "PAY_PER_REQUEST",  # a rate limiter's traffic is bursty; no capacity to plan or throttle on
        "hash_key": LAYOUT.hash_key,
        "range_key": LAYOUT.range_key,
        "attributes": [{"name": name, "type": kind} for name, kind in LAYOUT.attribute_types.items()],
        "global_secondary_indexes": [
            {
                "name": index.name,
                # key_schemas, not the deprecated hash_key/range_key of the index block.
                "key_schemas": [
                    {"attribute_name": index.hash_key, "key_type": "HASH"},
                    {"attribute_name": index.range_key, "key_type": "RANGE"},
                ],
                "projection_type": index.projection,
            }
            for index in LAYOUT.indexes
        ],
        "stream_enabled": True,  # always on, so the aggregator can be enabled later without touching the table
        "stream_view_type": LAYOUT.stream_view_type,
        "ttl": {"attribute_name": LAYOUT.ttl_attribute, "enabled": True},
        "server_side_encryption": {"enabled": True},
        # Stated even when off, so turning it off later is an update rather than a no-op. (In the template,
        # the EnablePITR and PITRRecoveryDays parameters, which these options give the defaults of.)
        "point_in_time_recovery": {"enabled": days > 0, "recovery_period_in_days": days or None},
        "deletion_protection_enabled": Option("deletion_protection"),
        "tags": _TAGS,
    })


def aggregator() -> list[Resource]:
    """The usage aggregator: the Lambda fed by the table's stream, its role, log group and failure queue.
    Its settings, and why they are what they are: `aggregator_settings.py`."""
    def own(part: str, logical_id: str, kind: Kind, settings: dict[str, Any], *depends_on: str) -> Resource:
        return Resource(part, logical_id, kind, AGGREGATOR, settings, depends_on)

    return [
        own(DLQ_PART, "AggregatorDLQ", QUEUE,
            {"message_retention_seconds": DLQ_RETENTION_S, "sqs_managed_sse_enabled": True, "tags": _TAGS}),
        own(LOGS_PART, "AggregatorLogs", LOG_GROUP,
            {"name": Name("log_group"), "retention_in_days": Option("log_retention_days"), "tags": _TAGS}),
        own(ROLE_PART, "AggregatorRole", ROLE, {
            "name_prefix": Option("role_name_prefix"),
            "assume_role_policy": Document(trust_policy),
            "permissions_boundary": Option("permission_boundary"),
            "description": Text("zae-limiter usage aggregator of table {table}", _TABLE_NAME),
            "tags": _TAGS,
        }),
        own(ROLE_POLICY_PART, "AggregatorRole", ROLE_POLICY, {
            "name": PerEngine(pulumi=None, cloudformation=INLINE_POLICY_NAME),
            "role": Attribute(ROLE_PART, "id"),
            "policy": Document(role_policy, (Attribute(TABLE_PART, "arn"), Attribute(TABLE_PART, "stream_arn"),
                                             Attribute(LOGS_PART, "arn"), Attribute(DLQ_PART, "arn"))),
        }),
        # After the log group (so Lambda never creates one without retention) and the policy (so the first
        # invocation can already write).
        own(FUNCTION_PART, "AggregatorFunction", FUNCTION, {
            "name": Name("function"),
            "description": Text("zae-limiter: usage snapshots of table {table} from its stream", _TABLE_NAME),
            "runtime": RUNTIME,
            "handler": PerEngine(pulumi=HANDLER, cloudformation=TEMPLATE_HANDLER),
            "role": Attribute(ROLE_PART, "arn"),
            "code": AggregatorCode(),
            "memory_size": Option("lambda_memory_mb"),
            "timeout": Option("lambda_timeout_s"),
            "environment": {"variables": environment()},
            "tags": _TAGS,
        }, LOGS_PART, ROLE_POLICY_PART),
        # Lambda checks the role can read the stream when the mapping is created: the policy comes first.
        own(MAPPING_PART, "AggregatorStreamMapping", MAPPING, {
            "event_source_arn": Attribute(TABLE_PART, "stream_arn"),
            # Lambda takes the function's name or ARN; each engine keeps what its existing stacks were given.
            "function_name": PerEngine(pulumi=Attribute(FUNCTION_PART, "arn"), cloudformation=Attribute(FUNCTION_PART, "name")),
            "starting_position": STARTING_POSITION,
            "batch_size": BATCH_SIZE,
            "maximum_batching_window_in_seconds": BATCHING_WINDOW_S,
            "bisect_batch_on_function_error": True,
            "function_response_types": ["ReportBatchItemFailures"],
            "maximum_retry_attempts": MAX_RETRY_ATTEMPTS,
            "maximum_record_age_in_seconds": MAX_RECORD_AGE_S,
            "destination_config": {"on_failure": {"destination_arn": Attribute(DLQ_PART, "arn")}},
            "tags": _TAGS,
        }, ROLE_POLICY_PART),
    ]


# The managed policies applications attach to their own roles, generated from the operation manifest in
# `zae_limiter.iam` and scoped to this table (and its indexes where a role queries them).
# tests/test_iam.py drives the runtime and fails when it calls an action the manifest lacks.
POLICY_IDS = {"acquire": "AcquirePolicy", "full": "FullAccessPolicy", "read_only": "ReadOnlyPolicy"}


def application_policies() -> list[Resource]:
    return [
        Resource(part, POLICY_IDS[role], POLICY, LIMITER, {
            "description": Text(f"zae-limiter on table {{table}}: {purpose}", _TABLE_NAME),
            "policy": Document(partial(iam.policy_document, role), (Attribute(TABLE_PART, "arn"),)),
            "tags": _TAGS,
        })
        for role, (_, part, purpose) in iam.APPLICATION_POLICIES.items()
    ]


def alarm(spec: AlarmSpec, actions: list[Any]) -> Resource:
    owner = AGGREGATOR if spec.key.startswith(AGGREGATOR_PART + "-") else LIMITER
    logical_id = "".join(word.capitalize() for word in spec.key.split("-")) + "Alarm"
    # Its part is not its key: `aggregator-dlq` is the queue's part (in Pulumi, the two have that same name).
    return Resource(f"{spec.key}-alarm", logical_id, ALARM, owner, {
        "name": Name("alarm", spec.key),
        "alarm_description": spec.description,
        "namespace": spec.namespace,
        "metric_name": spec.metric_name,
        "statistic": spec.statistic,
        "dimensions": spec.dimensions,
        "period": PERIOD_S,
        "evaluation_periods": EVALUATION_PERIODS,
        "comparison_operator": COMPARISON,
        "threshold": spec.threshold,
        "treat_missing_data": MISSING_DATA,
        "alarm_actions": actions,
        "ok_actions": actions,
        "tags": _TAGS,
    }, pulumi_suffix=spec.key)


# The component's outputs, in the order they are registered (and exported by the program, and written as
# the template's outputs), each an attribute of a resource; None where that resource does not exist.
OUTPUTS: Mapping[str, Attribute] = {
    "table_name": Attribute(TABLE_PART, "name"),
    "table_arn": Attribute(TABLE_PART, "arn"),
    "stream_arn": Attribute(TABLE_PART, "stream_arn"),
    "function_name": Attribute(FUNCTION_PART, "name"),
    "function_arn": Attribute(FUNCTION_PART, "arn"),
    "log_group_name": Attribute(LOGS_PART, "name"),
    **{key: Attribute(part, "arn") for key, part, _ in iam.APPLICATION_POLICIES.values()},
    "dlq_url": Attribute(DLQ_PART, "url"),
}
OUTPUT_KEYS = tuple(OUTPUTS)
