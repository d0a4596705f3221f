"""Stream records -> usage deltas. Pure functions: no I/O, no boto3.

A DynamoDB Stream record, in the shape Lambda delivers it, becomes one of:

- a `UsageDelta`, for an INSERT or MODIFY of a bucket item (`ENTITY#{id}` / `#BUCKET#{resource}`) whose
  consumed counters or acquire count moved. Usage is the new image minus the old image of each
  `c_{name}` (an INSERT has no old image: it counts as 0), and events the difference of `n`. The counters
  move by exactly each consume, adjust and refund, so refunds are negative deltas, and a cascade parent's
  consumption arrives as its own bucket item's records. Usage is never read from token balances (`b_*`):
  those refill with time and say nothing about what was consumed.
- None, for records that carry no usage: items that are not buckets (entity records, stored limits, and
  the snapshots the aggregator writes itself, which come back on the stream), bucket writes that moved
  nothing, and REMOVE. A bucket is removed only by `delete_entity`; its old image holds the entity's whole
  consumption to date, and "new minus old" would subtract that history from the current window. Deleting
  consumes nothing, so a REMOVE contributes nothing (a bucket created again later starts from 0, and its
  INSERT counts from 0).
- a raised `PoisonRecord`, for a record that cannot be read (a malformed image, a non-numeric counter, a
  missing timestamp). The handler reports it as a batch item failure; it is never skipped silently.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from zae_limiter.core import schema
from zae_limiter.core.validation import check_id

_STREAM_ARN = re.compile(
    r"arn:aws[a-zA-Z-]*:dynamodb:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"table/(?P<table>[A-Za-z0-9_.-]{1,255})/stream/(?P<label>.+)"
)
_SEQUENCE = re.compile(r"[0-9]{1,99}")
_NUMBER = re.compile(r"-?[0-9]{1,38}")  # a whole DynamoDB number (38 significant digits at most)
USAGE_EVENTS = ("INSERT", "MODIFY")


class PoisonRecord(Exception):
    """A stream record that cannot be turned into usage. Retrying cannot fix it."""

    def __init__(self, sequence_number: str | None, reason: str) -> None:
        self.sequence_number = sequence_number
        self.reason = reason
        super().__init__(f"stream record {sequence_number or '(no SequenceNumber)'}: {reason}")


@dataclass(frozen=True)
class UsageDelta:
    """What one bucket write consumed, and when."""

    region: str
    table: str
    entity_id: str
    resource: str
    sequence_number: str  # as delivered: the identifier a batch item failure reports
    order: str  # sequence_key(sequence_number): compares as the number does
    at: datetime  # the record's ApproximateCreationDateTime, UTC
    counters: Mapping[str, int]  # thousandths of a token per limit; negative for refunds
    events: int  # admitted acquires


def sequence_key(sequence_number: str) -> str:
    """A string that sorts like the decimal number: two digits of length, then the digits.

    Stream sequence numbers are decimal strings of 21 to 40 digits. A DynamoDB number keeps only 38
    significant digits, so they are stored as strings; plain strings of different lengths compare wrongly
    ("9" > "10"), and padding to a fixed width would break if AWS ever lengthened them. The length prefix
    orders any number of up to 99 digits, and DynamoDB compares strings byte-wise, so a condition such as
    `seq < :first` on these keys is a numeric comparison.
    """
    if not isinstance(sequence_number, str) or not _SEQUENCE.fullmatch(sequence_number):
        raise ValueError(f"not a stream sequence number: {sequence_number!r}")
    digits = sequence_number.lstrip("0") or "0"
    return f"{len(digits):02d}{digits}"


def stream_source(arn: Any) -> tuple[str, str]:
    """(region, table name) from a record's eventSourceARN: `arn:aws:dynamodb:R:A:table/T/stream/L`."""
    match = _STREAM_ARN.fullmatch(arn) if isinstance(arn, str) else None
    if match is None:
        raise ValueError(f"eventSourceARN is not a DynamoDB stream ARN: {arn!r}")
    return match["region"], match["table"]


def record_sequence(record: Any) -> str | None:
    """The record's SequenceNumber if it has a usable one (what a batch item failure must carry)."""
    stream = record.get("dynamodb") if isinstance(record, Mapping) else None
    sequence = stream.get("SequenceNumber") if isinstance(stream, Mapping) else None
    return sequence if isinstance(sequence, str) and _SEQUENCE.fullmatch(sequence) else None


def parse_record(record: Any) -> UsageDelta | None:
    """The usage one stream record carries, None if it carries none, or PoisonRecord."""
    sequence = record_sequence(record)
    if sequence is None:
        raise PoisonRecord(None, "no dynamodb.SequenceNumber (is this a DynamoDB Stream record as Lambda delivers it?)")
    stream: Mapping[str, Any] = record["dynamodb"]
    pk, sk = _key(stream.get("Keys"), sequence)
    entity_id = schema.entity_id_of(pk)
    resource = schema.bucket_resource_of(sk)
    if entity_id is None or resource is None:
        return None  # not a bucket: entity records, limits, and our own snapshots
    try:
        # The runtime validates both before building a key; anything else would build a snapshot key
        # that escapes its prefix (`ENTITY#a#b`) or is empty.
        check_id("entity_id", entity_id)
        check_id("resource", resource)
    except ValueError as error:
        raise PoisonRecord(sequence, f"bucket key {pk!r:.80}/{sk!r:.80}: {error}") from None
    event = record.get("eventName")
    if event == "REMOVE":
        return None  # see the module docstring: deleting a bucket consumes nothing
    if event not in USAGE_EVENTS:
        raise PoisonRecord(sequence, f"unknown eventName {event!r}")
    try:
        region, table = stream_source(record.get("eventSourceARN"))
    except ValueError as error:
        raise PoisonRecord(sequence, str(error)) from None
    at = _timestamp(stream.get("ApproximateCreationDateTime"), sequence)
    new = stream.get("NewImage")
    if not isinstance(new, Mapping):
        raise PoisonRecord(sequence, f"{event} without NewImage: the stream must use NEW_AND_OLD_IMAGES")
    old = stream.get("OldImage")
    if event == "MODIFY" and not isinstance(old, Mapping):
        raise PoisonRecord(sequence, "MODIFY without OldImage: the stream must use NEW_AND_OLD_IMAGES")
    before, before_events = _usage(old if event == "MODIFY" else None, sequence, "OldImage")
    after, after_events = _usage(new, sequence, "NewImage")
    # A counter only in the old image would mean the item was replaced, not consumed from: the runtime
    # only ever ADDs to counters. Only counters present now are measured.
    counters = {name: value - before.get(name, 0) for name, value in after.items() if value != before.get(name, 0)}
    events = after_events - before_events
    if not counters and not events:
        return None
    return UsageDelta(region, table, entity_id, resource, sequence, sequence_key(sequence), at, counters, events)


def _key(keys: Any, sequence: str) -> tuple[str, str]:
    try:
        pk, sk = keys[schema.PK]["S"], keys[schema.SK]["S"]
    except (KeyError, TypeError) as error:
        raise PoisonRecord(sequence, f"dynamodb.Keys lacks string {schema.PK}/{schema.SK}: {error!r}") from None
    if not isinstance(pk, str) or not isinstance(sk, str):
        raise PoisonRecord(sequence, "dynamodb.Keys holds non-string keys")
    return pk, sk


def _timestamp(value: Any, sequence: str) -> datetime:
    # Lambda delivers ApproximateCreationDateTime as epoch seconds (a JSON number). JSON integers have
    # no size limit, so the conversion to float is inside the try: 10**400 overflows it.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PoisonRecord(sequence, f"ApproximateCreationDateTime must be epoch seconds, got {value!r}")
    try:
        seconds = float(value)
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(seconds)
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise PoisonRecord(sequence, f"ApproximateCreationDateTime out of range: {value!r:.80}") from None


def _usage(image: Mapping[str, Any] | None, sequence: str, which: str) -> tuple[dict[str, int], int]:
    """Consumed counters (thousandths) and the acquire count of a bucket image; errors name the attribute."""
    counters: dict[str, int] = {}
    events = 0
    for attr, value in (image or {}).items():
        if attr.startswith(schema.COUNTER_PREFIX):
            counters[attr[len(schema.COUNTER_PREFIX):]] = _integer(value, sequence, which, attr)
        elif attr == schema.ACQUIRES:
            events = _integer(value, sequence, which, attr)
    return counters, events


def _integer(value: Any, sequence: str, which: str, attr: str) -> int:
    # Counters are whole thousandths and `n` a count, which DynamoDB sends as {"N": "<digits>"} with at
    # most 38 digits. `int()` alone would also take 1.5, True, " 5", "1_000" and "١٢": none of them is
    # something the runtime wrote, and a snapshot must not be built from them.
    number = value.get("N") if isinstance(value, Mapping) else None
    if not isinstance(number, str) or not _NUMBER.fullmatch(number):
        raise PoisonRecord(sequence, f"{which}.{attr} must be an integer number, got {value!r:.80}")
    return int(number)
