"""Helpers for the aggregator and usage tests: the table's real stream as Lambda events, and what the
aggregator wrote, read back from the table."""

from __future__ import annotations

import copy
import uuid
from datetime import datetime
from typing import Any, Iterable

from aggregator.usage_records import parse_record
from zae_limiter.core import schema
from zae_limiter.local import ensure_table
from zae_limiter.local_stream import StreamReader, lambda_events

REGION = "us-east-1"


def stream_event(endpoint_url: str, table_name: str, reader: StreamReader | None = None) -> dict[str, Any]:
    """Every record the table's stream holds (or the reader has not read yet), as one Lambda event."""
    own = reader is None
    reader = reader or StreamReader(table_name, endpoint_url=endpoint_url, region=REGION)
    try:
        records = [record for batch in reader.read() for record in batch.records]
        events = lambda_events(reader.stream_arn, records, batch_size=max(1, len(records)))
    finally:
        if own:
            reader.close()
    return events[0] if events else {"Records": []}


def subset(event: dict[str, Any], start: int = 0, stop: int | None = None) -> dict[str, Any]:
    """Records [start:stop] of an event, as Lambda delivers a retry from a checkpoint or a bisected half."""
    return {"Records": copy.deepcopy(event["Records"][start:stop])}


def retarget(event: dict[str, Any], table_name: str) -> dict[str, Any]:
    """The same records as if they came from another table's stream: replays one stream onto fresh
    tables, so different delivery schedules can be compared."""
    out = copy.deepcopy(event)
    for record in out["Records"]:
        head, _, rest = record["eventSourceARN"].partition(":table/")
        record["eventSourceARN"] = f"{head}:table/{table_name}/{rest.split('/', 1)[1]}"
    return out


def usage_records(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The records that carry usage (moto also streams a keys-only INSERT before an item's first update)."""
    return [r for r in event["Records"] if parse_record(r) is not None]


def set_times(event: dict[str, Any], times: Iterable[datetime]) -> dict[str, Any]:
    """Give the records of `event` that carry usage, in order, these ApproximateCreationDateTime values."""
    out = copy.deepcopy(event)
    records = usage_records(out)
    times = list(times)
    assert len(records) == len(times), f"{len(records)} bucket records, {len(times)} times"
    for record, moment in zip(records, times):
        record["dynamodb"]["ApproximateCreationDateTime"] = moment.timestamp()
    return out


def fresh_table(endpoint_url: str) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    ensure_table(name, endpoint_url=endpoint_url, region=REGION)
    return name


def usage_items(dynamodb: Any, table_name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": table_name, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**request)
        items.extend(item for item in page["Items"] if schema.is_usage_item(item))
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def snapshots(dynamodb: Any, table_name: str) -> dict[tuple[str, str, str, str], tuple[dict[str, float], int]]:
    """(entity, resource, window, window start) -> (counters, events): what the aggregator wrote."""
    result = {}
    for item in usage_items(dynamodb, table_name):
        snap = schema.snapshot_from_item(item)
        result[(snap.entity_id, snap.resource, snap.window, schema.format_window_start(snap.window_start))] = (
            snap.counters,
            snap.events,
        )
    return result
