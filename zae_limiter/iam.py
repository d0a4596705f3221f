"""The DynamoDB operations each role performs, and the IAM policies generated from them.

One manifest, read by the Pulumi component (the applications' managed policies and the aggregator's role)
and by `tests/test_iam.py`, which drives the real runtime and the real aggregator, records every request
they send, and fails when one is not covered here. So a new call in the code cannot ship with a policy
that denies it, and an entry that nothing calls any more shows up as unused.

Operations are named as botocore names them (`UpdateItem`). Each maps to the IAM actions that authorise
it: usually `dynamodb:<Operation>`, but a transaction has no action of its own: each of its parts is
authorised by the action of the single-item operation it stands for (an `Update` part needs
`dynamodb:UpdateItem`, a `ConditionCheck` part `dynamodb:ConditionCheckItem`); see "Using IAM with
DynamoDB transactions" in the DynamoDB developer guide.

Pure data and functions of strings: no boto3, no Pulumi.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import aggregator  # its __init__ is declarations only: importing it loads nothing else

# What an operation targets; each becomes one policy statement with its own resources.
TABLE = "table"  # the table ARN
INDEX = "index"  # `<table ARN>/index/*`: queries on a global secondary index
STREAM = "stream"  # the stream ARN: reading the table's change stream

TRANSACTIONS = ("TransactWriteItems", "TransactGetItems")
TRANSACTION_PART_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}


@dataclass(frozen=True, order=True)
class Operation:
    """One kind of DynamoDB request: its name, what it targets, and for a transaction its kinds of parts."""

    name: str
    on: str = TABLE
    parts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.on not in (TABLE, INDEX, STREAM):
            raise ValueError(f"operation {self.name}: target must be table, index or stream, got {self.on!r}")
        if (self.name in TRANSACTIONS) != bool(self.parts):
            raise ValueError(f"operation {self.name}: parts are given for transactions, and only for them")
        unknown = [part for part in self.parts if part not in TRANSACTION_PART_ACTIONS]
        if unknown:
            raise ValueError(f"operation {self.name}: unknown transaction parts {unknown}")

    @property
    def actions(self) -> tuple[str, ...]:
        """The IAM actions this operation needs on its target."""
        if self.parts:
            return tuple(sorted({TRANSACTION_PART_ACTIONS[part] for part in self.parts}))
        return (f"dynamodb:{self.name}",)

    @classmethod
    def from_request(cls, operation: str, request: Mapping[str, Any]) -> "Operation":
        """The operation a recorded request performs (`request` in wire form, as boto3's client takes it)."""
        if operation in TRANSACTIONS:
            parts = tuple(sorted({kind for item in request.get("TransactItems", []) for kind in item}))
            return cls(operation, TABLE, parts)
        if operation in STREAMS_API:
            return cls(operation, STREAM)
        return cls(operation, INDEX if request.get("IndexName") else TABLE)


# The whole DynamoDB Streams API: these operations act on a stream ARN, never on the table.
STREAMS_API = frozenset({"DescribeStream", "GetRecords", "GetShardIterator", "ListStreams"})

# -- the manifest -----------------------------------------------------------------------------------
# acquire, Lease.adjust, the refund on error, available, time_until_available.
ACQUIRE = (
    Operation("BatchGetItem"),  # stored limits and entity record on a cold cache; buckets for available()
    Operation("UpdateItem"),  # the conditional consume; adjust and refund
    Operation("TransactWriteItems", parts=("Update",)),  # cascade: entity and parent buckets at once
)

# Everything that reads and nothing that writes: entities, children, stored limits, availability, usage.
READ_ONLY = (
    Operation("BatchGetItem"),  # stored limits, buckets (available, time_until_available)
    Operation("GetItem"),  # get_entity, get_limits and the defaults
    Operation("Query"),  # usage snapshots of an entity (its partition)
    Operation("Query", INDEX),  # get_children (parent index), usage snapshots of a resource (usage index)
)

# Administration on top of the two: entities and stored limits.
ADMIN = (
    Operation("PutItem"),  # create_entity, set_limits and the defaults
    Operation("DeleteItem"),  # delete_limits and the defaults
    Operation("Query"),  # delete_entity lists the entity's items
    Operation("BatchWriteItem"),  # delete_entity removes them
    Operation("GetItem"),  # create_entity checks the parent exists
    Operation("Scan"),  # `limits apply --prune` reads every entity and stored limit (limits_spec/table.py)
)

FULL = tuple(sorted(set(ACQUIRE) | set(READ_ONLY) | set(ADMIN)))

# The usage aggregator's role: Lambda's poller reads the stream with it (the event source mapping), and
# the handler writes snapshots. The aggregator package declares what its handler calls, next to the code
# (its own tests hold the handler to that list); the policy is generated from it here.
AGGREGATOR = (
    *(Operation(name, STREAM) for name in aggregator.STREAM_OPERATIONS),
    *(Operation(name) for name in aggregator.TABLE_OPERATIONS),
)

# The managed policies applications attach to their roles, by manifest role: the output key, the
# logical-name part and the purpose of each (the Pulumi component and the CloudFormation template).
APPLICATION_POLICIES = {
    "acquire": ("acquire_policy_arn", "acquire-policy", "acquire, adjust, refund and check availability"),
    "full": ("full_access_policy_arn", "full-access-policy", "everything the runtime does, entities and limits included"),
    "read_only": ("read_only_policy_arn", "read-only-policy", "read entities, limits, availability and usage"),
}

ROLES: dict[str, tuple[Operation, ...]] = {
    "acquire": ACQUIRE,
    "read_only": READ_ONLY,
    "full": FULL,
    "aggregator": AGGREGATOR,
}


def operations(role: str) -> tuple[Operation, ...]:
    try:
        return ROLES[role]
    except KeyError:
        raise ValueError(f"unknown role {role!r}; roles: {sorted(ROLES)}") from None


def grants(role: str) -> dict[str, tuple[str, ...]]:
    """The IAM actions of a role, by target (table, index, stream), sorted and without duplicates."""
    by_target: dict[str, set[str]] = {}
    for operation in operations(role):
        by_target.setdefault(operation.on, set()).update(operation.actions)
    return {target: tuple(sorted(actions)) for target, actions in sorted(by_target.items())}


def missing(role: str, performed: Iterable[Operation]) -> list[tuple[Operation, str]]:
    """The (operation, action) pairs among `performed` that the role's policy would deny."""
    granted = grants(role)
    gaps = []
    for operation in sorted(set(performed)):
        for action in operation.actions:
            if action not in granted.get(operation.on, ()):
                gaps.append((operation, action))
    return gaps


def resources(target: str, table_arn: str, stream_arn: str | None = None) -> list[str]:
    """The ARNs a statement for `target` names. Never `*`."""
    if target == TABLE:
        return [table_arn]
    if target == INDEX:
        return [f"{table_arn}/index/*"]
    if stream_arn is None:
        raise ValueError("a policy that reads the stream needs the stream ARN")
    return [stream_arn]


_SIDS = {TABLE: "Table", INDEX: "Indexes", STREAM: "Stream"}


def statements(role: str, table_arn: str, stream_arn: str | None = None) -> list[dict[str, Any]]:
    """The role's policy statements: one per target, its actions on that target's ARNs only."""
    return [
        {
            "Sid": f"ZaeLimiter{_SIDS[target]}",
            "Effect": "Allow",
            "Action": list(actions),
            "Resource": resources(target, table_arn, stream_arn),
        }
        for target, actions in grants(role).items()
    ]


def policy_document(role: str, table_arn: str, stream_arn: str | None = None) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements(role, table_arn, stream_arn)}


def policy_json(role: str, table_arn: str, stream_arn: str | None = None) -> str:
    """The policy document as IAM takes it (stable key order, so an unchanged manifest is no diff)."""
    return json.dumps(policy_document(role, table_arn, stream_arn), sort_keys=True)
