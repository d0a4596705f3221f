"""The DynamoDB table, built from `zae_limiter.core.schema.TABLE`: no key, index or attribute name is spelled
here, so the deployed table and the one `ensure_table` makes for tests cannot drift apart."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from zae_limiter.core.schema import TABLE, TableLayout

from .args import ZaeLimiterArgs
from .inputs import tags_of


def table_args(args: ZaeLimiterArgs, layout: TableLayout = TABLE) -> dict[str, Any]:
    """Keyword arguments of `aws.dynamodb.Table` for this configuration."""
    return dict(
        name=args.table_name,
        billing_mode="PAY_PER_REQUEST",  # a rate limiter's traffic is bursty; no capacity to plan or throttle on
        hash_key=layout.hash_key,
        range_key=layout.range_key,
        attributes=[aws.dynamodb.TableAttributeArgs(name=name, type=kind) for name, kind in layout.attribute_types.items()],
        global_secondary_indexes=[
            aws.dynamodb.TableGlobalSecondaryIndexArgs(
                name=index.name,
                # key_schemas, not the deprecated hash_key/range_key of the index block.
                key_schemas=[
                    aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(attribute_name=index.hash_key, key_type="HASH"),
                    aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(attribute_name=index.range_key, key_type="RANGE"),
                ],
                projection_type=index.projection,
            )
            for index in layout.indexes
        ],
        stream_enabled=True,  # always on, so the aggregator can be enabled later without touching the table
        stream_view_type=layout.stream_view_type,
        ttl=aws.dynamodb.TableTtlArgs(attribute_name=layout.ttl_attribute, enabled=True),
        server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True),
        # Stated even when off, so turning it off later is an update rather than a no-op.
        point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(
            enabled=args.pitr_recovery_days > 0,
            recovery_period_in_days=args.pitr_recovery_days or None,
        ),
        deletion_protection_enabled=args.deletion_protection,
        tags=tags_of(args),
    )


def create_table(name: str, args: ZaeLimiterArgs, parent: pulumi.Resource) -> aws.dynamodb.Table:
    return aws.dynamodb.Table(name, **table_args(args), opts=pulumi.ResourceOptions(parent=parent))
