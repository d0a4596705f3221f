"""A table's DynamoDB Stream on an emulator, handed to the usage aggregator the way Lambda hands it.

On AWS the event source mapping reads the stream and invokes `aggregator.handler.handler`. On the
embedded backend (moto's server serves DynamoDB Streams at the same endpoint) this module plays that
part, for the demo, the tests, `zae-limiter usage` and `zae-limiter local`:

    run = aggregate_stream("rate_limits", endpoint_url=url)         # the whole stream, once: idempotent
    reader = StreamReader("rate_limits", endpoint_url=url)           # or keep a reader and call
    run = aggregate_stream("rate_limits", endpoint_url=url, reader=reader)   # ... for new records only
    follow_stream("rate_limits", endpoint_url=url, stop=event)       # or loop until `event` is set

    for event in lambda_events(reader.stream_arn, batch.records):    # or build the events yourself
        with lambda_environment(url):
            aggregator.handler.handler(event, None)

Reading stops at the end of what each shard holds now; an emulator's open shard has no end.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterator, Sequence

from .transport import clients
from .core.errors import StorageError
from .stack_defaults import OPTION_DEFAULTS, REGION

log = logging.getLogger("zae_limiter.local_stream")

LAMBDA_BATCH_SIZE = 100  # the event source mapping's default BatchSize for DynamoDB Streams
PAGE_SIZE = 1000


@dataclass
class ShardBatch:
    shard_id: str
    records: list[dict[str, Any]]  # as GetRecords returns them (boto3 shapes)


def latest_stream_arn(streams: Any, table_name: str) -> str:
    """The ARN of the table's current stream, from a `dynamodbstreams` client."""
    found: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": table_name}
    while True:
        page = streams.list_streams(**request)
        found.extend(page.get("Streams", []))
        if not page.get("LastEvaluatedStreamArn"):
            break
        request["ExclusiveStartStreamArn"] = page["LastEvaluatedStreamArn"]
    if not found:
        raise StorageError(
            f"table {table_name} has no stream (is it created? `ensure_table` enables NEW_AND_OLD_IMAGES)",
            "NoStream",
        )
    # A table deleted and created again has had several streams; labels are creation times.
    return max(found, key=lambda stream: stream.get("StreamLabel", ""))["StreamArn"]


class StreamReader:
    """Reads a table's stream shard by shard (parents before children), remembering where it stopped,
    so each `read()` returns only records it has not returned before."""

    def __init__(self, table_name: str, *, endpoint_url: str, region: str = REGION) -> None:
        self.table_name = table_name
        self.endpoint_url = clients.check_endpoint(endpoint_url)
        self.region = region
        self._streams = clients.make_client("dynamodbstreams", region, self.endpoint_url)
        try:
            self.stream_arn = latest_stream_arn(self._streams, table_name)
        except BaseException:
            self._streams.close()
            raise
        self.positions: dict[str, str] = {}  # shard id -> last sequence number read

    def read(self, advance: bool = True) -> list[ShardBatch]:
        """New records per shard. With `advance=False` the position moves only on `done(batch)`, so a
        batch that could not be processed is read again."""
        batches = []
        for shard_id in self._shards():
            records = self._read_shard(shard_id)
            if records:
                batches.append(ShardBatch(shard_id, records))
                if advance:
                    self.done(batches[-1])
        return batches

    def done(self, batch: ShardBatch) -> None:
        self.positions[batch.shard_id] = batch.records[-1]["dynamodb"]["SequenceNumber"]

    def _shards(self) -> list[str]:
        shards: list[dict[str, Any]] = []
        request: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self._streams.describe_stream(**request)["StreamDescription"]
            shards.extend(description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            request["ExclusiveStartShardId"] = last
        # Lambda finishes a parent shard before its children: the records of one item stay in order.
        known = {shard["ShardId"] for shard in shards}
        ordered: list[str] = []
        remaining = list(shards)
        while remaining:
            ready = [s for s in remaining if s.get("ParentShardId") not in known or s["ParentShardId"] in ordered]
            ready = ready or remaining[:1]  # a lineage cycle cannot happen; never loop forever anyway
            for shard in ready:
                ordered.append(shard["ShardId"])
                remaining.remove(shard)
        return ordered

    def _read_shard(self, shard_id: str) -> list[dict[str, Any]]:
        request: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id}
        position = self.positions.get(shard_id)
        if position:
            request.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=position)
        else:
            request.update(ShardIteratorType="TRIM_HORIZON")
        iterator = self._streams.get_shard_iterator(**request).get("ShardIterator")
        records: list[dict[str, Any]] = []
        while iterator:
            page = self._streams.get_records(ShardIterator=iterator, Limit=PAGE_SIZE)
            if not page.get("Records"):
                break  # the end of what the shard holds now
            records.extend(page["Records"])
            iterator = page.get("NextShardIterator")
        return records

    def close(self) -> None:
        self._streams.close()

    def __enter__(self) -> "StreamReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def lambda_record(record: dict[str, Any], source_arn: str) -> dict[str, Any]:
    """One GetRecords record as Lambda delivers it: with eventSourceARN, and ApproximateCreationDateTime
    as epoch seconds rounded down (boto3 parses it into a datetime; Lambda passes the number)."""
    stream = dict(record["dynamodb"])
    created = stream.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        stream["ApproximateCreationDateTime"] = float(math.floor(created.timestamp()))
    return {
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion") or source_arn.split(":")[3],
        "dynamodb": stream,
        "eventSourceARN": source_arn,
    }


def lambda_events(source_arn: str, records: Sequence[dict[str, Any]], batch_size: int = LAMBDA_BATCH_SIZE) -> list[dict[str, Any]]:
    """The events Lambda would invoke the function with for one shard's records, in order. They pass
    through JSON, as on Lambda, so the handler sees only JSON types."""
    converted = [lambda_record(record, source_arn) for record in records]
    return [
        json.loads(json.dumps({"Records": converted[i : i + batch_size]}))
        for i in range(0, len(converted), batch_size)
    ]


@contextmanager
def lambda_environment(
    endpoint_url: str, windows: str | None = None, retention_days: int | None = None
) -> Iterator[None]:
    """The environment `aggregator.handler.handler` reads, pointed at an emulator, for the duration of
    the block (process-wide: not for use while other threads create AWS clients)."""
    values = {"AWS_ENDPOINT_URL": clients.check_endpoint(endpoint_url)}
    if windows is not None:
        values["SNAPSHOT_WINDOWS"] = windows
    if retention_days is not None:
        values["SNAPSHOT_RETENTION_DAYS"] = str(retention_days)
    if clients.is_loopback(endpoint_url) and not os.environ.get("AWS_ACCESS_KEY_ID"):
        values.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")  # emulators ignore them
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update({k: v for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class AggregationRun:
    """What one pass of the aggregator over the stream did."""

    records: int = 0
    batches: int = 0
    usage_records: int = 0
    snapshots_written: int = 0
    duplicates_skipped: int = 0
    failures: list[str] = field(default_factory=list)  # SequenceNumbers reported as batch item failures


def aggregate_stream(
    table_name: str,
    *,
    endpoint_url: str,
    region: str = REGION,
    windows: str = OPTION_DEFAULTS["snapshot_windows"],
    retention_days: int = OPTION_DEFAULTS["snapshot_retention_days"],
    reader: StreamReader | None = None,
) -> AggregationRun:
    """Run the aggregator over the stream of an emulated table: every record since the stream began
    (safe to repeat: the aggregator is idempotent), or only what `reader` has not read yet. Failures
    are returned, not retried: on AWS, Lambda would deliver those records again."""
    from aggregator.handler import process_event  # the Lambda's package: imported only when used
    from aggregator.snapshots import Settings

    settings = Settings.parse(windows, retention_days)
    owned = reader is None
    reader = reader or StreamReader(table_name, endpoint_url=endpoint_url, region=region)
    dynamodb: dict[str, Any] = {}

    def client_for(record_region: str) -> Any:
        if record_region not in dynamodb:
            dynamodb[record_region] = clients.make_client("dynamodb", record_region, reader.endpoint_url)
        return dynamodb[record_region]

    run = AggregationRun()
    try:
        for batch in reader.read(advance=False):
            for event in lambda_events(reader.stream_arn, batch.records):
                outcome = process_event(event, settings, client_for)
                run.batches += 1
                run.records += outcome.records
                run.usage_records += outcome.usage_records
                run.snapshots_written += outcome.snapshots_written
                run.duplicates_skipped += outcome.duplicates_skipped
                run.failures.extend(f["itemIdentifier"] for f in outcome.response()["batchItemFailures"])
            # Reported failures are not retried here (Lambda would, then give up); they are in the result.
            reader.done(batch)
    finally:
        for client in dynamodb.values():
            client.close()
        if owned:
            reader.close()
    return run


def follow_stream(
    table_name: str,
    *,
    endpoint_url: str,
    stop: threading.Event,
    region: str = REGION,
    windows: str = OPTION_DEFAULTS["snapshot_windows"],
    retention_days: int = OPTION_DEFAULTS["snapshot_retention_days"],
    interval: float = 1.0,
    on_run: Callable[[AggregationRun], None] | None = None,
) -> None:
    """Aggregate new stream records every `interval` seconds until `stop` is set: the embedded backend's
    stand-in for the deployed Lambda (`zae-limiter local` runs it in a thread). Starts from the beginning
    of the stream, so usage written before it started is counted too. A pass that fails (the server
    going away) is logged and tried again on the next tick, from the first batch it did not finish."""
    with StreamReader(table_name, endpoint_url=endpoint_url, region=region) as reader:
        while not stop.is_set():
            try:
                run = aggregate_stream(
                    table_name, endpoint_url=endpoint_url, region=region, windows=windows,
                    retention_days=retention_days, reader=reader,
                )
            except Exception:
                log.exception("aggregating the stream of %s failed; retrying in %.1fs", table_name, interval)
            else:
                if on_run is not None and run.records:
                    on_run(run)
            stop.wait(interval)
