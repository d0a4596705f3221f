"""The Lambda entry point: a DynamoDB Stream batch in, usage snapshots out. Only the I/O lives here; the
decisions are in `usage_records` (record -> delta) and `snapshots` (deltas -> idempotent writes).

Configuration: the table comes from each record's eventSourceARN; SNAPSHOT_WINDOWS (default
`hourly,daily`, `monthly` allowed) and SNAPSHOT_RETENTION_DAYS (default 90) from the environment. boto3
honours AWS_ENDPOINT_URL, which is how emulators are reached.

Failures use the partial batch response (`ReportBatchItemFailures` on the event source mapping):
`{"batchItemFailures": [{"itemIdentifier": <SequenceNumber>}]}`. Lambda checkpoints before the lowest one
reported and delivers every record from there again (bisecting the batch when asked to), until the
record succeeds or the retries are spent and the batch goes to the on-failure destination (DLQ).
Redelivered records that were applied already are skipped by the snapshots' marks (see snapshots.py).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from .snapshots import SnapshotChange, Settings, merge, pending_after, stored_sequence, update_request
from .usage_records import PoisonRecord, UsageDelta, parse_record, sequence_key

log = logging.getLogger("zae_limiter.aggregator")
# Lambda's root logger passes WARNING and above by default; the per-batch summary is INFO and wanted.
log.setLevel(logging.INFO)

# botocore's standard retries absorb throttling; a write still failing after them is reported for
# redelivery. The timeouts leave room for several attempts within the function's 60 s.
CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 5})
# A snapshot has one writer per shard at a time, so a conditional write fails again only if records
# were applied by an overlapping invocation in between; a few rounds settle that.
MAX_WRITE_ROUNDS = 5

ClientFor = Callable[[str], Any]


class MalformedBatch(Exception):
    """Records without a usable SequenceNumber cannot be reported one by one: the invocation fails as a
    whole (after applying everything else), so Lambda retries, bisects and finally sends them to the DLQ."""


@dataclass
class BatchOutcome:
    records: int = 0
    usage_records: int = 0  # bucket records that moved a counter
    snapshots_written: int = 0
    records_applied: int = 0  # (record, window) pairs added to snapshots
    duplicates_skipped: int = 0  # (record, window) pairs applied by an earlier delivery
    failures: dict[str, str] = field(default_factory=dict)  # sequence_key -> SequenceNumber

    def fail(self, sequence_number: str) -> None:
        self.failures[sequence_key(sequence_number)] = sequence_number

    def response(self) -> dict[str, Any]:
        """The partial batch response, lowest sequence number first."""
        return {"batchItemFailures": [{"itemIdentifier": self.failures[k]} for k in sorted(self.failures)]}

    def summary(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "usage_records": self.usage_records,
            "snapshots_written": self.snapshots_written,
            "records_applied": self.records_applied,
            "duplicates_skipped": self.duplicates_skipped,
            "failed": [self.failures[k] for k in sorted(self.failures)],
        }


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point for DynamoDB Stream batches."""
    settings = Settings.from_env(os.environ)
    return process_event(event, settings, default_client).response()


def process_event(event: Mapping[str, Any], settings: Settings, client_for: ClientFor) -> BatchOutcome:
    """Apply one batch. `client_for(region)` returns a boto3 DynamoDB client."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        raise MalformedBatch("not a DynamoDB Stream event: no 'Records' list")
    outcome = BatchOutcome(records=len(records))
    unidentified = 0
    deltas: list[UsageDelta] = []
    for index, record in enumerate(records):
        try:
            delta = parse_record(record)
        except PoisonRecord as poison:
            log.error("poison stream record (reported, not applied): %s", poison)
            if poison.sequence_number is None:
                unidentified += 1
                log.error("record %d of the batch has no SequenceNumber: %.500r", index, record)
            else:
                outcome.fail(poison.sequence_number)
            continue
        if delta is not None:
            deltas.append(delta)
    outcome.usage_records = len(deltas)
    for change in merge(deltas, settings):
        try:
            applied = write_change(client_for(change.snapshot.region), change, settings)
        except Exception:  # any failure: report the records, Lambda delivers them again
            log.exception(
                "writing snapshot %s failed; reporting its %d records from %s for redelivery",
                _describe(change),
                len(change.deltas),
                change.first.sequence_number,
            )
            outcome.fail(change.first.sequence_number)
            continue
        outcome.records_applied += applied
        outcome.duplicates_skipped += len(change.deltas) - applied
        outcome.snapshots_written += 1 if applied else 0
    log.info("batch done: %s", json.dumps(outcome.summary()))
    if unidentified:
        raise MalformedBatch(f"{unidentified} record(s) without a SequenceNumber; everything else was applied")
    return outcome


def write_change(client: Any, change: SnapshotChange, settings: Settings) -> int:
    """Add the part of `change` its snapshot does not hold yet; returns how many records that was."""
    pending: SnapshotChange | None = change
    for _ in range(MAX_WRITE_ROUNDS):
        if pending is None:
            return 0  # every record was applied by an earlier delivery
        request = update_request(pending, settings)
        try:
            client.update_item(**request)
            return len(pending.deltas)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            item = error.response.get("Item")
        if item is None:  # an emulator that does not return ALL_OLD on a failed condition
            item = client.get_item(TableName=request["TableName"], Key=request["Key"], ConsistentRead=True).get("Item")
        pending = pending_after(change, stored_sequence(item))
    raise RuntimeError(f"snapshot {_describe(change)} changed under the aggregator {MAX_WRITE_ROUNDS} times")


def _describe(change: SnapshotChange) -> str:
    s = change.snapshot
    return f"{s.table}:{s.entity_id}/{s.resource}/{s.window}/{s.window_start:%Y-%m-%dT%H:%M:%SZ}"


# -- clients ----------------------------------------------------------------------------------------
_clients: dict[tuple[str, str | None, str | None], Any] = {}
_clients_lock = threading.Lock()


def default_client(region: str) -> Any:
    """One client per region (and endpoint), kept across warm invocations."""
    cache_key = (region, os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"))
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            client = _clients[cache_key] = boto3.session.Session().client(
                "dynamodb", region_name=region, config=CLIENT_CONFIG
            )
        return client
