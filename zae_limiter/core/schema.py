"""The table layout: keys, indexes, attribute names and item codecs. The single source of truth.

The runtime, `ensure_table`, the aggregator and the Pulumi component all read this module; no other
module spells a key prefix or an index.

Items (PK / SK):
  ENTITY#{id}     #META                          entity record; GSI1PK=PARENT#{parent} when it has one
  ENTITY#{id}     #LIMIT#{resource}              all stored limits of (entity, resource) in one item
  ENTITY#{id}     #BUCKET#{resource}             all token buckets of (entity, resource) in one item
  ENTITY#{id}     #USAGE#{resource}#{window}#{start}
                                                 one usage snapshot; GSI2PK=RESOURCE#{resource}
  RESOURCE#{res}  #DEFAULTS                      resource-level default limits
  SYSTEM#         #DEFAULTS                      system-level default limits

Why this shape:
- One bucket item per (entity, resource) holds every limit, so a warm acquire is one conditional
  UpdateItem whatever the number of limits, and costs 1 WCU while the item stays under 1 KB.
- Bucket items never carry GSI1/GSI2 key attributes: an item in an ALL-projected index is written twice,
  and buckets are the hottest items in the table.
- Stored limits are one item per (entity, resource) rather than one per limit (`#LIMIT#{res}#{name}` in
  the seed), so resolving limits is a handful of GetItems in one BatchGetItem, not a Query per level.
- Per limit, a bucket stores `b_{name}`: the GCRA theoretical arrival time in integer nanoseconds (the
  bucket is full when it is <= now), and `c_{name}`: consumed thousandths of a token, a counter that every
  consume, adjust and refund moves by exactly its amount. `n` counts admitted acquires. The aggregator
  reads usage from counter differences only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from .errors import StorageError, ValidationError
from .limits import Limit
from .models import Entity, UsageSnapshot, tokens_of
from .validation import MAX_ID_BYTES, PARTITION_KEY_MAX_BYTES, SORT_KEY_MAX_BYTES, check_id

# -- attribute and index names --------------------------------------------------------------------
PK = "PK"
SK = "SK"
GSI1 = "GSI1"  # children of a parent
GSI1PK = "GSI1PK"
GSI1SK = "GSI1SK"
GSI2 = "GSI2"  # usage snapshots by resource
GSI2PK = "GSI2PK"
GSI2SK = "GSI2SK"
TTL = "ttl"

ENTITY_PREFIX = "ENTITY#"
PARENT_PREFIX = "PARENT#"
RESOURCE_PREFIX = "RESOURCE#"
SYSTEM_PK = "SYSTEM#"
META_SK = "#META"
LIMIT_PREFIX = "#LIMIT#"
BUCKET_PREFIX = "#BUCKET#"
USAGE_PREFIX = "#USAGE#"
DEFAULTS_SK = "#DEFAULTS"
DEFAULT_RESOURCE = "_default_"

TAT_PREFIX = "b_"
COUNTER_PREFIX = "c_"
ACQUIRES = "n"
LIMITS_ATTR = "limits"
# On a limits item (entity per resource, entity `_default_`, resource defaults): acquire refuses with
# ResourceDisabled (entity `_default_`: every resource of the entity; resource defaults: every entity).
DISABLED_ATTR = "disabled"
SCHEDULE_ATTR = "schedule"
# The version of an entity's own configuration: on its record and own limits items, the highest is the
# configuration's version; on its buckets, the version the last write was built from (config_cache.py).
VERSION_ATTR = "cv"

WINDOWS = ("hourly", "daily", "monthly")


@dataclass(frozen=True)
class Index:
    name: str
    hash_key: str
    range_key: str
    projection: str = "ALL"


@dataclass(frozen=True)
class TableLayout:
    hash_key: str
    range_key: str
    attribute_types: Mapping[str, str]
    indexes: tuple[Index, ...]
    ttl_attribute: str
    stream_view_type: str


TABLE = TableLayout(
    hash_key=PK,
    range_key=SK,
    attribute_types={PK: "S", SK: "S", GSI1PK: "S", GSI1SK: "S", GSI2PK: "S", GSI2SK: "S"},
    indexes=(Index(GSI1, GSI1PK, GSI1SK), Index(GSI2, GSI2PK, GSI2SK)),
    ttl_attribute=TTL,
    stream_view_type="NEW_AND_OLD_IMAGES",
)


def create_table_request(table_name: str) -> dict[str, Any]:
    """The CreateTable request for emulators and tests (`ensure_table`). AWS gets the table from the
    Pulumi component, which reads the same `TABLE`."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [
            {"AttributeName": TABLE.hash_key, "KeyType": "HASH"},
            {"AttributeName": TABLE.range_key, "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": kind} for name, kind in TABLE.attribute_types.items()
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.hash_key, "KeyType": "HASH"},
                    {"AttributeName": index.range_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": index.projection},
            }
            for index in TABLE.indexes
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": TABLE.stream_view_type},
        "SSESpecification": {"Enabled": True},
    }


# -- keys -------------------------------------------------------------------------------------------
def entity_pk(entity_id: str) -> str:
    return ENTITY_PREFIX + entity_id


def parent_key(parent_id: str) -> str:
    return PARENT_PREFIX + parent_id


def resource_key(resource: str) -> str:
    return RESOURCE_PREFIX + resource


def bucket_sk(resource: str) -> str:
    return BUCKET_PREFIX + resource


def limits_sk(resource: str) -> str:
    return LIMIT_PREFIX + resource


def key(pk: str, sk: str) -> dict[str, dict[str, str]]:
    return {PK: {"S": pk}, SK: {"S": sk}}


def meta_key(entity_id: str) -> dict:
    return key(entity_pk(entity_id), META_SK)


def bucket_key(entity_id: str, resource: str) -> dict:
    return key(entity_pk(entity_id), bucket_sk(resource))


def entity_limits_key(entity_id: str, resource: str) -> dict:
    return key(entity_pk(entity_id), limits_sk(resource))


def resource_defaults_key(resource: str) -> dict:
    return key(resource_key(resource), DEFAULTS_SK)


def system_defaults_key() -> dict:
    return key(SYSTEM_PK, DEFAULTS_SK)


def usage_sk(resource: str, window: str, window_start: str) -> str:
    return f"{USAGE_PREFIX}{resource}#{window}#{window_start}"


def usage_index_sk(window: str, window_start: str, entity_id: str) -> str:
    return f"{window}#{window_start}#{entity_id}"


def tat_attr(limit_name: str) -> str:
    return TAT_PREFIX + limit_name


def counter_attr(limit_name: str) -> str:
    return COUNTER_PREFIX + limit_name


def entity_id_of(pk: str) -> str | None:
    return pk[len(ENTITY_PREFIX):] if pk.startswith(ENTITY_PREFIX) else None


def bucket_resource_of(sk: str) -> str | None:
    return sk[len(BUCKET_PREFIX):] if sk.startswith(BUCKET_PREFIX) else None


def format_window_start(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_window_start(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


# -- key sizes --------------------------------------------------------------------------------------
def keys_around(value: str) -> list[tuple[str, str, int]]:
    """Every key and index key this module builds around an id or resource name `value`, as (what,
    key, DynamoDB's limit in UTF-8 bytes): table and GSI partition keys 2048 bytes, sort keys 1024
    (validation.py cites the quota). Usage keys are built for each window at its longest start."""
    start = format_window_start(datetime(2026, 1, 1, tzinfo=timezone.utc))  # every start has this length
    keys = [
        ("PK of an entity's items", entity_pk(value), PARTITION_KEY_MAX_BYTES),
        ("PK of a resource's defaults, GSI2PK", resource_key(value), PARTITION_KEY_MAX_BYTES),
        ("GSI1PK (children of a parent)", parent_key(value), PARTITION_KEY_MAX_BYTES),
        ("GSI1SK (a child's entity key)", entity_pk(value), SORT_KEY_MAX_BYTES),
        ("SK of a bucket", bucket_sk(value), SORT_KEY_MAX_BYTES),
        ("SK of stored limits", limits_sk(value), SORT_KEY_MAX_BYTES),
    ]
    for window in WINDOWS:
        keys.append((f"SK of a {window} usage snapshot", usage_sk(value, window, start), SORT_KEY_MAX_BYTES))
        keys.append((f"GSI2SK of a {window} usage snapshot", usage_index_sk(window, start, value), SORT_KEY_MAX_BYTES))
    return keys


def _check_key_room() -> None:
    """Every id check_id accepts must fit every key: fail at import if a key pattern outgrows MAX_ID_BYTES."""
    longest = "\U0001F600" * (MAX_ID_BYTES // 4)  # 4 bytes each in UTF-8
    for what, built, limit in keys_around(longest):
        if len(built.encode("utf-8")) > limit:
            raise RuntimeError(f"{what} of an id of {MAX_ID_BYTES} bytes is over DynamoDB's {limit} bytes: lower MAX_ID_BYTES")


_check_key_room()


# -- wire values ------------------------------------------------------------------------------------
def n(value: int | float) -> dict[str, str]:
    return {"N": str(value)}


def s(value: str) -> dict[str, str]:
    return {"S": value}


def _corrupt(item: Mapping, what: str, error: Exception | None = None) -> StorageError:
    pk, sk = item.get(PK), item.get(SK)
    where = f"{pk.get('S') if isinstance(pk, Mapping) else pk}/{sk.get('S') if isinstance(sk, Mapping) else sk}"
    detail = f": {error}" if error else ""
    return StorageError(f"stored item {where} is corrupt: {what}{detail}", code="CorruptItem")


# What each DynamoDB type holds on the wire, and how a message calls it.
_WIRE_TYPES = {
    "S": (str, "a string"), "N": (str, "a number"), "BOOL": (bool, "a boolean"), "M": (dict, "a map"), "L": (list, "a list"),
}


def _typed(item: Mapping, path: str, value: Any, kind: str) -> Any:
    """The payload of one attribute value of type `kind` ({"S": "x"} -> "x"), or a StorageError naming
    the item and the attribute: a value of another type is never read as a default (a cascade flag
    stored as "true" must not read as False)."""
    python_type, described = _WIRE_TYPES[kind]
    if isinstance(value, Mapping) and len(value) == 1 and isinstance(value.get(kind), python_type):
        return value[kind]
    raise _corrupt(item, f"attribute {path!r} must be {described}, got {value!r:.80}")


def _attr(item: Mapping, attr: str, kind: str, *, required: bool = True) -> Any:
    value = item.get(attr)
    if value is None:
        if required:
            raise _corrupt(item, f"attribute {attr!r} is missing")
        return None
    return _typed(item, attr, value, kind)


def _integer(item: Mapping, path: str, value: Any) -> int:
    text = _typed(item, path, value, "N")
    try:
        return int(text)
    except ValueError:
        raise _corrupt(item, f"attribute {path!r} must be a whole number, got {text!r:.80}") from None


def _number(item: Mapping, path: str, value: Any) -> float:
    text = _typed(item, path, value, "N")
    try:
        return float(text)
    except ValueError:
        raise _corrupt(item, f"attribute {path!r} must be a number, got {text!r:.80}") from None


def _checked(item: Mapping, check: Any, *args: Any, **kwargs: Any) -> Any:
    """A value read back that must pass an input check (ids become parts of keys again, limits decide)."""
    try:
        return check(*args, **kwargs)
    except ValidationError as error:
        raise _corrupt(item, str(error)) from None


# -- entity codec -----------------------------------------------------------------------------------
def entity_item(entity: Entity) -> dict[str, Any]:
    item: dict[str, Any] = {**meta_key(entity.entity_id), "entity_id": s(entity.entity_id), "cascade": {"BOOL": entity.cascade}}
    if entity.name is not None:
        item["name"] = s(entity.name)
    if entity.parent_id is not None:
        item["parent_id"] = s(entity.parent_id)
        item[GSI1PK] = s(parent_key(entity.parent_id))
        item[GSI1SK] = s(entity_pk(entity.entity_id))
    if entity.metadata:
        item["metadata"] = {"M": {k: s(v) for k, v in entity.metadata.items()}}
    if entity.created_at is not None:
        item["created_at"] = s(entity.created_at.astimezone(timezone.utc).isoformat())
    return item


def entity_from_item(item: Mapping[str, Any]) -> Entity:
    if not isinstance(item, Mapping):
        raise _corrupt({}, f"not an entity record: {item!r:.80}")
    # Ids read back become parts of keys again (a parent's limits and buckets): checked like input.
    entity_id = _checked(item, check_id, "entity_id", _attr(item, "entity_id", "S"))
    parent_id = _attr(item, "parent_id", "S", required=False)
    if parent_id is not None:
        _checked(item, check_id, "parent_id", parent_id)
    cascade = _attr(item, "cascade", "BOOL", required=False)  # absent: written before the flag existed
    metadata = {
        key: _typed(item, f"metadata.{key}", value, "S")
        for key, value in (_attr(item, "metadata", "M", required=False) or {}).items()
    }
    created = _attr(item, "created_at", "S", required=False)
    try:
        created_at = datetime.fromisoformat(created) if created is not None else None
    except ValueError:
        raise _corrupt(item, f"attribute 'created_at' must be an ISO 8601 time, got {created!r:.80}") from None
    return Entity(
        entity_id=entity_id,
        name=_attr(item, "name", "S", required=False),
        parent_id=parent_id,
        cascade=bool(cascade),
        metadata=metadata,
        created_at=created_at,
    )


# -- limits codec -----------------------------------------------------------------------------------
LIMIT_NUMBERS = ("capacity", "refill_amount", "refill_period_seconds")


def limit_value(limit: Limit) -> dict[str, Any]:
    """One limit as a map attribute (the quota and soft fields only when set, so older readers of a
    plain rate limit see what they always saw)."""
    spec: dict[str, Any] = {field: n(getattr(limit, field)) for field in LIMIT_NUMBERS}
    if limit.soft:
        spec["soft"] = {"BOOL": True}
    if limit.every is not None:
        spec["every"] = s(limit.every)
        spec["tz"] = s(limit.tz or "UTC")
    return {"M": spec}


def limits_value(limits: Iterable[Limit]) -> dict[str, Any]:
    return {"M": {limit.name: limit_value(limit) for limit in limits}}


def limits_item(item_key: Mapping, limits: Iterable[Limit]) -> dict[str, Any]:
    return {**item_key, LIMITS_ATTR: limits_value(limits)}


def _limit_from_value(item: Mapping[str, Any], path: str, name: str, value: Any) -> Limit:
    spec = _typed(item, path, value, "M")
    numbers = []
    for field in LIMIT_NUMBERS:
        if field not in spec:
            raise _corrupt(item, f"attribute {path + '.' + field!r} is missing")
        numbers.append(_number(item, f"{path}.{field}", spec[field]))
    soft = _typed(item, f"{path}.soft", spec["soft"], "BOOL") if "soft" in spec else False
    every = _typed(item, f"{path}.every", spec["every"], "S") if "every" in spec else None
    tz = _typed(item, f"{path}.tz", spec["tz"], "S") if every is not None and "tz" in spec else None
    return _checked(item, Limit, name, *numbers, soft=soft, every=every, tz=tz)


def limits_from_value(item: Mapping[str, Any], value: Any, path: str = LIMITS_ATTR) -> list[Limit]:
    """The limits of a map attribute (`limits`, or a schedule entry's) of `item`, which errors name."""
    stored = _typed(item, path, value, "M")
    return [_limit_from_value(item, f"{path}.{name}", name, spec) for name, spec in sorted(stored.items())]


def limits_from_item(item: Mapping[str, Any]) -> list[Limit]:
    """The limits a limits item holds; none when it only carries flags (disabled, a schedule)."""
    if LIMITS_ATTR not in item:
        return []
    return limits_from_value(item, item[LIMITS_ATTR])


SCHEDULE_SINCE_ATTR = "schedule_since"


def schedule_value(schedule: Iterable[tuple[str, Iterable[Limit]]]) -> dict[str, Any]:
    return {"L": [{"M": {"cron": s(cron), LIMITS_ATTR: limits_value(limits)}} for cron, limits in schedule]}


def schedule_from_item(item: Mapping[str, Any]) -> tuple[tuple[tuple[str, tuple[Limit, ...]], ...], int]:
    """The schedule a limits item holds, and since when (ns): ((cron, limits), ...), or () and 0."""
    if SCHEDULE_ATTR not in item:
        return (), 0
    entries = []
    for i, entry in enumerate(_attr(item, SCHEDULE_ATTR, "L")):
        path = f"{SCHEDULE_ATTR}[{i}]"
        fields = _typed(item, path, entry, "M")
        for part in ("cron", LIMITS_ATTR):
            if part not in fields:
                raise _corrupt(item, f"attribute {path + '.' + part!r} is missing")
        cron = _typed(item, f"{path}.cron", fields["cron"], "S")
        entries.append((cron, tuple(limits_from_value(item, fields[LIMITS_ATTR], f"{path}.{LIMITS_ATTR}"))))
    since = _integer(item, SCHEDULE_SINCE_ATTR, item[SCHEDULE_SINCE_ATTR]) if SCHEDULE_SINCE_ATTR in item else 0
    return tuple(entries), since


def version_of(item: Mapping[str, Any] | None) -> int:
    if not item or VERSION_ATTR not in item:
        return 0
    return _integer(item, VERSION_ATTR, item[VERSION_ATTR])


def disabled_of(item: Mapping[str, Any] | None) -> bool:
    if not item:
        return False
    return bool(_attr(item, DISABLED_ATTR, "BOOL", required=False))


# -- bucket codec -----------------------------------------------------------------------------------
def _prefixed_integers(item: Mapping[str, Any] | None, prefix: str) -> dict[str, int]:
    if not item:
        return {}
    try:  # the hot path: every acquire's answer is read here
        return {name[len(prefix):]: int(value["N"]) for name, value in item.items() if name.startswith(prefix)}
    except (KeyError, TypeError, ValueError):
        pass
    return {name[len(prefix):]: _integer(item, name, value) for name, value in item.items() if name.startswith(prefix)}


def bucket_tats(item: Mapping[str, Any] | None) -> dict[str, int]:
    """Theoretical arrival times by limit name, from a bucket item or an UpdateItem's attributes."""
    return _prefixed_integers(item, TAT_PREFIX)


def bucket_counters(item: Mapping[str, Any] | None) -> dict[str, int]:
    """Consumed thousandths by limit name."""
    return _prefixed_integers(item, COUNTER_PREFIX)


def bucket_acquires(item: Mapping[str, Any] | None) -> int:
    if not item or ACQUIRES not in item:
        return 0
    return _integer(item, ACQUIRES, item[ACQUIRES])


# -- usage snapshot codec ---------------------------------------------------------------------------
def snapshot_from_item(item: Mapping[str, Any]) -> UsageSnapshot:
    start = _attr(item, WINDOW_START_ATTR, "S")
    try:
        window_start = parse_window_start(start)
    except ValueError:
        raise _corrupt(item, f"attribute {WINDOW_START_ATTR!r} must be a time like 2026-01-01T00:00:00Z, got {start!r:.80}") from None
    milli = bucket_counters(item)
    return UsageSnapshot(
        entity_id=_checked(item, check_id, "entity_id", _attr(item, ENTITY_ID_ATTR, "S")),
        resource=_checked(item, check_id, "resource", _attr(item, RESOURCE_ATTR, "S")),
        window=_checked(item, check_window, _attr(item, WINDOW_ATTR, "S")),
        window_start=window_start,
        counters=tokens_of(milli),
        events=bucket_acquires(item),
        counters_milli=milli,
    )


# -- usage snapshots: keys, windows and the attributes the aggregator writes ------------------------
# A snapshot item holds, besides its keys, the fields `snapshot_from_item` reads, `c_{name}` (thousandths)
# and `n` (admitted acquires) summed over the window, `ttl` (epoch seconds) and `seq`: the ordering key of
# the last stream record applied to it, which makes the aggregator idempotent (aggregator/snapshots.py).
SEQUENCE_ATTR = "seq"
ENTITY_ID_ATTR = "entity_id"
RESOURCE_ATTR = "resource"
WINDOW_ATTR = "window"
WINDOW_START_ATTR = "window_start"
# Greater than every character of a formatted window start, so `prefix + HIGH` bounds a key range.
HIGH = "~"


def check_window(window: object, field: str = "window") -> str:
    if window not in WINDOWS:
        raise ValidationError(field, f"must be one of {', '.join(WINDOWS)}, got {window!r}")
    return window  # type: ignore[return-value]


def parse_windows(text: object, field: str = "snapshot_windows") -> tuple[str, ...]:
    """`"hourly,daily"` -> ("hourly", "daily"): a comma-separated, non-empty subset of WINDOWS."""
    windows = [w.strip() for w in str(text).split(",") if w.strip()] if isinstance(text, str) else []
    if not windows or any(w not in WINDOWS for w in windows) or len(set(windows)) != len(windows):
        raise ValidationError(field, f"must be a comma-separated subset of {', '.join(WINDOWS)}, got {text!r}")
    return tuple(windows)


def window_start_of(moment: datetime, window: str) -> datetime:
    """The start (UTC) of the `window` that contains `moment`. Windows are calendar-aligned in UTC."""
    check_window(window)
    utc = moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    if window == "hourly":
        return utc
    if window == "daily":
        return utc.replace(hour=0)
    return utc.replace(day=1, hour=0)


def window_end(start: datetime, window: str) -> datetime:
    """The start of the next window: exclusive end of the window that begins at `start`."""
    check_window(window)
    if window == "hourly":
        return start + timedelta(hours=1)
    if window == "daily":
        return start + timedelta(days=1)
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def usage_key(entity_id: str, resource: str, window: str, window_start: datetime) -> dict:
    return key(entity_pk(entity_id), usage_sk(resource, window, format_window_start(window_start)))


def usage_sk_prefix(resource: str | None = None, window: str | None = None) -> str:
    """The SK prefix of an entity's snapshots: all, one resource's, or one resource's in one window."""
    if resource is None:
        return USAGE_PREFIX
    if window is None:
        return f"{USAGE_PREFIX}{resource}#"
    return usage_sk(resource, window, "")


def usage_index_prefix(window: str) -> str:
    """The GSI2SK prefix of a resource's snapshots in one window (GSI2SK = window#start#entity)."""
    return f"{window}#"


def snapshot_identity(entity_id: str, resource: str, window: str, window_start: datetime) -> dict[str, Any]:
    """Every attribute of a snapshot except its sums, `ttl` and `seq`: the key, the GSI2 keys (usage by
    resource) and the fields `snapshot_from_item` reads. Writing them on every update is idempotent."""
    start = format_window_start(window_start)
    return {
        **usage_key(entity_id, resource, window, window_start),
        GSI2PK: s(resource_key(resource)),
        GSI2SK: s(usage_index_sk(window, start, entity_id)),
        ENTITY_ID_ATTR: s(entity_id),
        RESOURCE_ATTR: s(resource),
        WINDOW_ATTR: s(window),
        WINDOW_START_ATTR: s(start),
    }


def is_usage_item(item: Mapping[str, Any]) -> bool:
    return str(item.get(SK, {}).get("S", "")).startswith(USAGE_PREFIX)
