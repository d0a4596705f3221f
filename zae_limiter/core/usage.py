"""Reading usage snapshots: by entity (its partition) or by resource (GSI2), and totals over a range.

Flows (see calls.py), so `SyncRateLimiter` and `RateLimiter` share them. The aggregator (aggregator/)
writes the snapshots; the key layout is in schema.py.

Ranges are half-open on `window_start`: `start <= window_start < end`, so consecutive ranges add up
([a, b) + [b, c) = [a, c)) and a summary for a day is its 24 hourly snapshots, not 25.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, TYPE_CHECKING

from . import schema
from .batches import pages
from .calls import Call, Flow
from .errors import ValidationError
from .models import UsageSnapshot, milli_of, tokens_of
from .validation import check_id

if TYPE_CHECKING:
    from ..state.limiter_core import LimiterCore


@dataclass(frozen=True)
class UsageQuery:
    """Validated arguments of a usage read."""

    entity_id: str | None
    resource: str | None
    window: str
    start: datetime | None
    end: datetime | None

    def covers(self, snapshot: UsageSnapshot) -> bool:
        return (
            snapshot.window == self.window
            and (self.entity_id is None or snapshot.entity_id == self.entity_id)
            and (self.resource is None or snapshot.resource == self.resource)
            and (self.start is None or snapshot.window_start >= self.start)
            and (self.end is None or snapshot.window_start < self.end)
        )


@dataclass(frozen=True)
class UsageSummary:
    """Totals over a range of snapshots of one window size.

    `start`/`end` are the range asked for or, where not given, the start of the first snapshot found and
    the end of the last one's window (None when nothing was found). `counters` are summed per limit
    (refunds included, so a total can be lower than a window's), `events` are admitted acquires and
    `snapshots` how many snapshots were summed. Under cascade a parent's snapshots include its
    children's consumption: summing a parent and its children counts it twice.

    The sums are exact: made in whole thousandths from the snapshots' `counters_milli`, and kept as
    such in `counters_milli`; `counters` are the same in tokens, as floats, for display."""

    entity_id: str | None
    resource: str | None
    window: str
    start: datetime | None
    end: datetime | None
    counters: dict[str, float]
    events: int
    snapshots: int
    counters_milli: dict[str, int] = None  # type: ignore[assignment]  # derived from `counters` when not given

    def __post_init__(self) -> None:
        if self.counters_milli is None:
            object.__setattr__(self, "counters_milli", milli_of(self.counters))


def check_query(
    entity_id: Any = None, resource: Any = None, window: Any = "hourly", start: Any = None, end: Any = None
) -> UsageQuery:
    if entity_id is None and resource is None:
        raise ValidationError("entity_id", "give an entity, a resource or both")
    if entity_id is not None:
        check_id("entity_id", entity_id)
    if resource is not None:
        check_id("resource", resource)
    schema.check_window(window)
    start = _utc("start", start)
    end = _utc("end", end)
    if start is not None and end is not None and start > end:
        raise ValidationError("end", f"must not be before start ({start.isoformat()}), got {end.isoformat()}")
    return UsageQuery(entity_id, resource, window, start, end)


def _utc(field: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ValidationError(field, f"must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(field, f"must be timezone-aware (e.g. tzinfo=timezone.utc), got naive {value.isoformat()}")
    return value.astimezone(timezone.utc)


def query_request(table: str, query: UsageQuery) -> dict[str, Any]:
    """The first Query request for `query`. With an entity, its partition (the sort key narrows to the
    resource, window and range when a resource is given); with only a resource, GSI2, whose sort key
    (`window#start#entity`) narrows to the window and range."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    filters: list[str] = []
    lo_start = schema.format_window_start(query.start) if query.start else ""
    # BETWEEN is inclusive; the exclusive end is applied by `covers` after reading (at most one window).
    hi_start = schema.format_window_start(query.end) if query.end else schema.HIGH
    if query.entity_id is not None:
        request: dict[str, Any] = {"TableName": table}
        names.update({"#pk": schema.PK, "#sk": schema.SK})
        values[":pk"] = schema.s(schema.entity_pk(query.entity_id))
        if query.resource is not None:
            prefix = schema.usage_sk_prefix(query.resource, query.window)
            condition = "#pk = :pk AND #sk BETWEEN :lo AND :hi"
            values.update({":lo": schema.s(prefix + lo_start), ":hi": schema.s(prefix + hi_start)})
        else:
            # Resources are not known in advance: the whole usage range of the partition, filtered.
            condition = "#pk = :pk AND begins_with(#sk, :prefix)"
            values[":prefix"] = schema.s(schema.usage_sk_prefix())
            names["#w"] = schema.WINDOW_ATTR
            values[":w"] = schema.s(query.window)
            filters.append("#w = :w")
            if query.start or query.end:
                names["#ws"] = schema.WINDOW_START_ATTR
            if query.start:
                filters.append("#ws >= :start")
                values[":start"] = schema.s(lo_start)
            if query.end:
                filters.append("#ws < :end")
                values[":end"] = schema.s(hi_start)
    else:
        assert query.resource is not None
        request = {"TableName": table, "IndexName": schema.GSI2}
        names.update({"#pk": schema.GSI2PK, "#sk": schema.GSI2SK})
        prefix = schema.usage_index_prefix(query.window)
        # GSI2SK = window#start#entity: a key whose start equals `end` sorts after prefix+end, so the
        # upper bound is already exclusive here.
        condition = "#pk = :pk AND #sk BETWEEN :lo AND :hi"
        values.update(
            {
                ":pk": schema.s(schema.resource_key(query.resource)),
                ":lo": schema.s(prefix + lo_start),
                ":hi": schema.s(prefix + hi_start),
            }
        )
    request.update(
        KeyConditionExpression=condition,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )
    if filters:
        request["FilterExpression"] = " AND ".join(filters)
    return request


def get_usage_snapshots(
    core: LimiterCore,
    entity_id: str | None = None,
    resource: str | None = None,
    window: str = "hourly",
    start: datetime | None = None,
    end: datetime | None = None,
) -> Flow[list[UsageSnapshot]]:
    """Snapshots of `window` whose window_start is in [start, end), oldest first."""
    return (yield from read_snapshots(core, check_query(entity_id, resource, window, start, end)))


def read_snapshots(core: LimiterCore, query: UsageQuery) -> Flow[list[UsageSnapshot]]:
    items = yield from pages(Call("Query", query_request(core.table, query)))
    found = [snapshot for snapshot in map(schema.snapshot_from_item, items) if query.covers(snapshot)]
    found.sort(key=lambda s: (s.window_start, s.entity_id, s.resource))
    return found


def get_usage_summary(
    core: LimiterCore,
    entity_id: str | None = None,
    resource: str | None = None,
    window: str = "hourly",
    start: datetime | None = None,
    end: datetime | None = None,
) -> Flow[UsageSummary]:
    """Totals per limit over the snapshots `get_usage_snapshots` returns for the same arguments."""
    query = check_query(entity_id, resource, window, start, end)
    return summarize(query, (yield from read_snapshots(core, query)))


def summarize(query: UsageQuery, snapshots: Iterable[UsageSnapshot]) -> UsageSummary:
    milli: dict[str, int] = {}
    events = 0
    count = 0
    first: datetime | None = None
    last: datetime | None = None
    for snapshot in snapshots:
        count += 1
        events += snapshot.events
        # Sum in thousandths (the stored unit, ints) so totals are exact, then convert once for display.
        for name, value in snapshot.counters_milli.items():
            milli[name] = milli.get(name, 0) + value
        first = snapshot.window_start if first is None else min(first, snapshot.window_start)
        last = snapshot.window_start if last is None else max(last, snapshot.window_start)
    return UsageSummary(
        entity_id=query.entity_id,
        resource=query.resource,
        window=query.window,
        start=query.start or first,
        end=query.end or (schema.window_end(last, query.window) if last is not None else None),
        counters=tokens_of(dict(sorted(milli.items()))),
        events=events,
        snapshots=count,
        counters_milli=dict(sorted(milli.items())),
    )
