"""The managed policies applications attach to their own roles: acquire-only, full access and read-only.

Each is generated from the operation manifest in `zae_limiter.iam`, scoped to this table (and its indexes
where a role queries them). `tests/test_iam.py` drives the runtime and fails when it calls an action the
manifest lacks, so these policies follow the code.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from zae_limiter import iam

from . import names
from .args import ZaeLimiterArgs
from .inputs import derived, tags_of

POLICIES = iam.APPLICATION_POLICIES


def create_application_policies(
    name: str, args: ZaeLimiterArgs, table: aws.dynamodb.Table, parent: pulumi.Resource
) -> dict[str, aws.iam.Policy]:
    return {
        role: aws.iam.Policy(
            names.child(name, part),
            description=derived(lambda table, purpose=purpose: f"zae-limiter on table {table}: {purpose}", args.table_name),
            policy=table.arn.apply(lambda arn, role=role: iam.policy_json(role, arn)),
            tags=tags_of(args),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        for role, (_, part, purpose) in POLICIES.items()
    }
