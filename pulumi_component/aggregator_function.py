"""The usage aggregator: the Lambda fed by the table's stream, its role, log group and failure queue.
Its settings, and why they are what they are: `aggregator_settings.py`."""

from __future__ import annotations

from typing import Any, Sequence

import pulumi
import pulumi_aws as aws

from . import names
from .inputs import derived, tags_of
from .args import ZaeLimiterArgs
from .aggregator_settings import (
    BATCH_SIZE,
    BATCHING_WINDOW_S,
    DLQ_RETENTION_S,
    LAMBDA_ASSUME_ROLE,
    MAX_RECORD_AGE_S,
    MAX_RETRY_ATTEMPTS,
    STARTING_POSITION,
    environment,
    role_policy_document,
)
from .lambda_package import HANDLER, RUNTIME, lambda_files


def lambda_archive(files: dict[str, bytes] | None = None) -> pulumi.AssetArchive:
    """The function's code as an archive the engine zips and hashes (same sources, same hash)."""
    files = lambda_files() if files is None else files
    return pulumi.AssetArchive({path: pulumi.StringAsset(content.decode("utf-8")) for path, content in files.items()})


class Aggregator:
    """The aggregator's resources, created as children of `parent`."""

    def __init__(
        self,
        name: str,
        args: ZaeLimiterArgs,
        table: aws.dynamodb.Table,
        parent: pulumi.Resource,
        code: pulumi.Archive | None = None,
    ) -> None:
        child = pulumi.ResourceOptions(parent=parent)
        tags = tags_of(args)
        self.function_name = derived(names.function_name, args.table_name)

        self.dlq = aws.sqs.Queue(
            names.child(name, "aggregator-dlq"),
            message_retention_seconds=DLQ_RETENTION_S,
            sqs_managed_sse_enabled=True,
            tags=tags,
            opts=child,
        )
        self.log_group = aws.cloudwatch.LogGroup(
            names.child(name, "aggregator-logs"),
            name=derived(names.log_group_name, self.function_name),
            retention_in_days=args.log_retention_days,
            tags=tags,
            opts=child,
        )
        self.role = aws.iam.Role(
            names.child(name, "aggregator-role"),
            name_prefix=args.role_name_prefix,
            assume_role_policy=LAMBDA_ASSUME_ROLE,
            permissions_boundary=args.permission_boundary,
            description=derived("zae-limiter usage aggregator of table {}".format, args.table_name),
            tags=tags,
            opts=child,
        )
        self.role_policy = aws.iam.RolePolicy(
            names.child(name, "aggregator-policy"),
            role=self.role.id,
            policy=pulumi.Output.all(table.arn, table.stream_arn, self.log_group.arn, self.dlq.arn).apply(
                lambda arns: role_policy_document(*arns)
            ),
            opts=child,
        )
        # After the log group (so Lambda never creates one without retention) and the policy (so the first
        # invocation can already write).
        after_policy = pulumi.ResourceOptions(parent=parent, depends_on=[self.log_group, self.role_policy])
        self.function = aws.lambda_.Function(
            names.child(name, "aggregator"),
            name=self.function_name,
            description=derived("zae-limiter: usage snapshots of table {} from its stream".format, args.table_name),
            runtime=RUNTIME,
            handler=HANDLER,
            role=self.role.arn,
            code=code if code is not None else lambda_archive(),
            memory_size=args.lambda_memory_mb,
            timeout=args.lambda_timeout_s,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables=environment(args)),
            tags=tags,
            opts=after_policy,
        )
        # Lambda checks the role can read the stream when the mapping is created: the policy comes first.
        self.event_source_mapping = aws.lambda_.EventSourceMapping(
            names.child(name, "aggregator-stream"),
            event_source_arn=table.stream_arn,
            function_name=self.function.arn,
            starting_position=STARTING_POSITION,
            batch_size=BATCH_SIZE,
            maximum_batching_window_in_seconds=BATCHING_WINDOW_S,
            bisect_batch_on_function_error=True,
            function_response_types=["ReportBatchItemFailures"],
            maximum_retry_attempts=MAX_RETRY_ATTEMPTS,
            maximum_record_age_in_seconds=MAX_RECORD_AGE_S,
            destination_config=aws.lambda_.EventSourceMappingDestinationConfigArgs(
                on_failure=aws.lambda_.EventSourceMappingDestinationConfigOnFailureArgs(destination_arn=self.dlq.arn)
            ),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[self.role_policy]),
        )

    @property
    def resources(self) -> Sequence[pulumi.Resource]:
        return (self.dlq, self.log_group, self.role, self.role_policy, self.function, self.event_source_mapping)


def outputs(aggregator: Aggregator | None) -> dict[str, Any]:
    """The aggregator's outputs; None for each when it is disabled, so the set of keys never changes."""
    if aggregator is None:
        return {"function_name": None, "function_arn": None, "log_group_name": None, "dlq_url": None}
    return {
        "function_name": aggregator.function.name,
        "function_arn": aggregator.function.arn,
        "log_group_name": aggregator.log_group.name,
        "dlq_url": aggregator.dlq.url,
    }
