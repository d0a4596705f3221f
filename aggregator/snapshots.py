"""Usage deltas -> snapshot writes: settings, merging, and the idempotent UpdateItem. Pure functions.

One snapshot item per (entity, resource, window, window start) holds the sums of `c_{name}` (thousandths)
and `n` (acquires) of every bucket write whose stream record's ApproximateCreationDateTime falls in that
window. The deltas of one batch are merged first, so a batch costs one write per snapshot it touches,
however many records it holds.

Idempotency (a batch delivered twice, a retry from a checkpoint, a bisected half delivered again must
leave the same snapshots):

- A snapshot only ever receives the records of one bucket item: its key holds the item's (entity,
  resource). DynamoDB Streams deliver the records of one item in the order of its modifications, with
  increasing sequence numbers, and the Lambda event source mapping processes a shard's records in order
  (and a parent shard before its children). So the records applied to a snapshot are always a prefix of
  that snapshot's records, and one number describes them: the sequence number of the last one applied.
- Each snapshot stores that number in `seq` (as `usage_records.sequence_key`, a string that compares like
  the number: sequence numbers have up to 40 digits, a DynamoDB number keeps 38). A write adds a merge of
  records `first..last` under the condition `attribute_not_exists(seq) OR seq < :first` and sets
  `seq = :last`, in one UpdateItem, so the sums and the mark move together or not at all.
- If the condition fails, part of the merge was applied before (a redelivery). The failure returns the
  item as it stands (ReturnValuesOnConditionCheckFailure ALL_OLD); the writer keeps only the records
  after its `seq` (`pending_after`) and writes again, or stops when nothing is left.
- A write that fails for another reason applies nothing; the handler reports the lowest sequence number
  of the merge's records as a batch item failure and Lambda delivers again from there. Records of other
  snapshots applied in the meantime are then skipped by their own marks.
- A poison record (unreadable image) is reported and left out; the records after it are applied at once.
  If they waited, and Lambda ran out of retries before bisecting down to the poison record alone, the
  good records it skipped with it would be lost. A poison record stays unreadable on every delivery, so
  its usage is lost either way; nothing else is.

Sums within one window are exact. A refund counts in the window of its own record, so an acquire at
10:59:59 refunded at 11:00:01 shows +x in the 10:00 hour and -x in the 11:00 hour; any range covering
both sums to zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from zae_limiter.core import schema
from zae_limiter.core.errors import ValidationError

from .usage_records import UsageDelta

DEFAULT_WINDOWS = "hourly,daily"
DEFAULT_RETENTION_DAYS = 90
MAX_RETENTION_DAYS = 3650  # the component accepts the same range (StackOptions.snapshot_retention_days)
WINDOWS_ENV = "SNAPSHOT_WINDOWS"
RETENTION_ENV = "SNAPSHOT_RETENTION_DAYS"


@dataclass(frozen=True)
class Settings:
    windows: tuple[str, ...] = ("hourly", "daily")
    retention_days: int = DEFAULT_RETENTION_DAYS

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Settings":
        """From SNAPSHOT_WINDOWS (default hourly,daily) and SNAPSHOT_RETENTION_DAYS (default 90).
        A bad value raises ValidationError naming the variable: the function fails loudly on every
        invocation rather than writing snapshots nobody asked for."""
        return cls.parse(
            environ.get(WINDOWS_ENV, DEFAULT_WINDOWS),
            environ.get(RETENTION_ENV, str(DEFAULT_RETENTION_DAYS)),
            WINDOWS_ENV,
            RETENTION_ENV,
        )

    @classmethod
    def parse(
        cls,
        windows: Any,
        retention_days: Any,
        windows_field: str = "snapshot_windows",
        retention_field: str = "snapshot_retention_days",
    ) -> "Settings":
        parsed = schema.parse_windows(windows, windows_field)
        days: Any = retention_days
        if isinstance(days, str):
            try:
                days = int(days.strip())
            except ValueError:
                days = None
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_RETENTION_DAYS:
            raise ValidationError(
                retention_field, f"must be a whole number of days from 1 to {MAX_RETENTION_DAYS}, got {retention_days!r}"
            )
        return cls(parsed, days)


@dataclass(frozen=True)
class SnapshotId:
    region: str
    table: str
    entity_id: str
    resource: str
    window: str
    window_start: datetime


@dataclass(frozen=True)
class SnapshotChange:
    """The merged deltas of one batch for one snapshot, in stream order."""

    snapshot: SnapshotId
    deltas: tuple[UsageDelta, ...]

    @property
    def first(self) -> UsageDelta:
        return self.deltas[0]

    @property
    def last(self) -> UsageDelta:
        return self.deltas[-1]

    @property
    def counters(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for delta in self.deltas:
            for name, value in delta.counters.items():
                total[name] = total.get(name, 0) + value
        return total

    @property
    def events(self) -> int:
        return sum(delta.events for delta in self.deltas)


def merge(deltas: Iterable[UsageDelta], settings: Settings) -> list[SnapshotChange]:
    """Group deltas by the snapshots they belong to (one per configured window), each in stream order."""
    groups: dict[SnapshotId, list[UsageDelta]] = {}
    for delta in deltas:
        for window in settings.windows:
            snapshot = SnapshotId(
                delta.region, delta.table, delta.entity_id, delta.resource, window, schema.window_start_of(delta.at, window)
            )
            groups.setdefault(snapshot, []).append(delta)
    return [SnapshotChange(snapshot, tuple(sorted(group, key=_order))) for snapshot, group in groups.items()]


def pending_after(change: SnapshotChange, stored: str | None) -> SnapshotChange | None:
    """The part of `change` not yet applied to a snapshot whose mark is `stored`; None if all of it was."""
    if stored is None:
        return change
    rest = tuple(delta for delta in change.deltas if _order(delta) > stored)
    return replace(change, deltas=rest) if rest else None


def stored_sequence(item: Mapping[str, Any] | None) -> str | None:
    """The mark of the last record applied to a stored snapshot (None when there is no snapshot yet)."""
    value = (item or {}).get(schema.SEQUENCE_ATTR)
    return value.get("S") if isinstance(value, Mapping) else None


def expires_at(snapshot: SnapshotId, settings: Settings) -> int:
    """The snapshot's TTL (epoch seconds): retention counted from the end of its window, so a monthly
    snapshot is kept as long after its month as an hourly one after its hour."""
    end = schema.window_end(snapshot.window_start, snapshot.window)
    return math.floor((end + timedelta(days=settings.retention_days)).timestamp())


def update_request(change: SnapshotChange, settings: Settings) -> dict[str, Any]:
    """The conditional UpdateItem that adds `change` to its snapshot, or fails if any of it is there."""
    snapshot = change.snapshot
    identity = schema.snapshot_identity(snapshot.entity_id, snapshot.resource, snapshot.window, snapshot.window_start)
    item_key = {schema.PK: identity.pop(schema.PK), schema.SK: identity.pop(schema.SK)}
    names: dict[str, str] = {"#seq": schema.SEQUENCE_ATTR, "#ttl": schema.TTL}
    values: dict[str, Any] = {
        ":first": schema.s(_order(change.first)),
        ":last": schema.s(_order(change.last)),
        ":ttl": schema.n(expires_at(snapshot, settings)),
    }
    sets = ["#seq = :last", "#ttl = :ttl"]
    for i, (attr, value) in enumerate(identity.items()):
        names[f"#a{i}"] = attr
        values[f":a{i}"] = value
        sets.append(f"#a{i} = :a{i}")
    # Every touched counter is ADDed, zero sums included: the snapshot then names each limit that moved.
    adds = []
    for i, (name, milli) in enumerate(sorted(change.counters.items())):
        names[f"#c{i}"] = schema.counter_attr(name)
        values[f":c{i}"] = schema.n(milli)
        adds.append(f"#c{i} :c{i}")
    names["#n"] = schema.ACQUIRES
    values[":n"] = schema.n(change.events)
    adds.append("#n :n")
    return {
        "TableName": snapshot.table,
        "Key": item_key,
        "UpdateExpression": "SET " + ", ".join(sets) + " ADD " + ", ".join(adds),
        "ConditionExpression": "attribute_not_exists(#seq) OR #seq < :first",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def _order(delta: UsageDelta) -> str:
    return delta.order
