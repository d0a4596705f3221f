"""The records the plan works on: what a limits file asks for (`LimitsSpec`), what the table holds
(`TableState`), and one step between them (`Change`). Plain data, no I/O.

A level's stored limits (`StoredLimits`) are its own limits and its schedule, written together (the
runtime's `set_limits(..., schedule=...)` replaces both). A disabled flag is its own thing: it lives on a
limits item but is set and lifted apart from the limits (`disable`/`enable`), so the plan writes it apart.
A flag is named by `(entity_id, resource)` as `disable` takes them: (entity, None) the whole entity,
(entity, resource) one resource of it, (None, resource) a resource for every entity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

from ..core.limits import Limit, format_limits
from ..core.models import Entity

LimitSet = tuple[Limit, ...]  # sorted by name: two sets are equal when they hold the same limits


def limit_set(limits: "list[Limit] | tuple[Limit, ...]") -> LimitSet:
    return tuple(sorted(limits, key=lambda limit: limit.name))


Schedule = tuple[tuple[str, LimitSet], ...]  # (cron, limits), sorted by cron text
FlagKey = tuple[Optional[str], Optional[str]]  # (entity_id, resource) as `disable` takes them


@dataclass(frozen=True)
class StoredLimits:
    """A level's stored limits: its own, and the schedule that replaces them at cron times. Entries are
    kept sorted by their cron text: their order means nothing (no two may fire at once, and the latest
    firing wins), so two schedules are equal when they hold the same entries."""

    limits: LimitSet
    schedule: Schedule = ()

    def describe(self) -> str:
        return format_limits(self.limits) + "".join(f"; at {cron!r}: {format_limits(limits)}" for cron, limits in self.schedule)


def stored(limits: "list[Limit] | tuple[Limit, ...]", schedule: "Sequence[tuple[str, Sequence[Limit]]]" = ()) -> StoredLimits:
    entries = sorted(((cron, limit_set(list(entry))) for cron, entry in schedule), key=lambda entry: entry[0])
    return StoredLimits(limit_set(limits), tuple(entries))


@dataclass(frozen=True)
class EntitySpec:
    """One entity as the file declares it. The file manages its record whole: an absent name, parent or
    metadata means none, an absent cascade means false. Disabled flags are named or not: `disabled` None
    (the file does not say) leaves the table's flag alone unless pruning; `disabled_for` holds the flags
    of single resources the file names (True: disabled, False: enabled)."""

    entity_id: str
    name: Optional[str] = None
    parent_id: Optional[str] = None
    cascade: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, StoredLimits] = field(default_factory=dict)  # by resource (`_default_` included)
    disabled: Optional[bool] = None  # the whole entity
    disabled_for: Mapping[str, bool] = field(default_factory=dict)  # by resource

    def flags(self) -> dict[FlagKey, bool]:
        named: dict[FlagKey, bool] = {(self.entity_id, r): value for r, value in self.disabled_for.items()}
        if self.disabled is not None:
            named[(self.entity_id, None)] = self.disabled
        return named

    def record(self) -> "EntityRecord":
        return EntityRecord(self.name, self.parent_id, self.cascade, dict(self.metadata))


@dataclass(frozen=True)
class LimitsSpec:
    """A whole limits file. `system` None: the file does not name system defaults. `disabled_resources`:
    the flags of resources (for every entity) the file names."""

    system: Optional[StoredLimits] = None
    resources: Mapping[str, StoredLimits] = field(default_factory=dict)
    entities: Mapping[str, EntitySpec] = field(default_factory=dict)
    disabled_resources: Mapping[str, bool] = field(default_factory=dict)

    def flags(self) -> dict[FlagKey, bool]:
        """Every disabled flag the file names, True or False."""
        named: dict[FlagKey, bool] = {(None, r): value for r, value in self.disabled_resources.items()}
        for entity in self.entities.values():
            named.update(entity.flags())
        return named


@dataclass(frozen=True)
class EntityRecord:
    """The fields of an entity record a file sets (not its id, nor when it was created)."""

    name: Optional[str]
    parent_id: Optional[str]
    cascade: bool
    metadata: Mapping[str, str]

    @classmethod
    def of(cls, entity: Entity) -> "EntityRecord":
        return cls(entity.name, entity.parent_id, entity.cascade, dict(entity.metadata))

    def describe(self) -> str:
        parts = []
        if self.name is not None:
            parts.append(f"name={self.name!r}")
        if self.parent_id is not None:
            parts.append(f"parent={self.parent_id}" + (" (cascade)" if self.cascade else ""))
        if self.metadata:
            parts.append("metadata={" + ", ".join(f"{k}={v}" for k, v in sorted(self.metadata.items())) + "}")
        return ", ".join(parts) or "(no name, parent or metadata)"


@dataclass(frozen=True)
class TableState:
    """What the table holds of the things a plan may touch. Entities read only to follow a parent chain
    are in `entities` too: the plan needs their parents to refuse a cycle. `complete`: the whole table was
    read (so a plan may delete what the file does not name). `disabled`: the flags that are set."""

    system: Optional[StoredLimits] = None
    resources: Mapping[str, StoredLimits] = field(default_factory=dict)
    entities: Mapping[str, Entity] = field(default_factory=dict)
    entity_limits: Mapping[str, Mapping[str, StoredLimits]] = field(default_factory=dict)
    complete: bool = False
    disabled: frozenset = frozenset()  # of FlagKey


CREATE, CHANGE, DELETE = "create", "change", "delete"
SYSTEM, RESOURCE, ENTITY, ENTITY_LIMITS = "system defaults", "resource defaults", "entity", "entity limits"
DISABLED = "disabled flag"  # create: disable; delete: enable


@dataclass(frozen=True)
class Change:
    """One write of a plan. `before`/`after`: StoredLimits (limits), an EntityRecord (entity) or True (a
    disabled flag), None on the side where the thing does not exist. An entity's delete also removes its
    stored limits, flags and buckets. A flag names its (entity_id, resource) as `disable` takes them."""

    action: str  # CREATE, CHANGE or DELETE
    kind: str  # SYSTEM, RESOURCE, ENTITY, ENTITY_LIMITS or DISABLED
    entity_id: Optional[str] = None
    resource: Optional[str] = None
    before: object = None
    after: object = None
    note: str = ""  # what else the write does (an entity's delete: its stored limits and buckets go too)

    @property
    def target(self) -> str:
        if self.kind == SYSTEM:
            return "system"
        if self.kind == RESOURCE:
            return str(self.resource)
        if self.kind == ENTITY or (self.kind == DISABLED and self.resource is None):
            return str(self.entity_id)
        if self.kind == DISABLED and self.entity_id is None:
            return f"{self.resource} (every entity)"
        return f"{self.entity_id} / {self.resource}"

    def __str__(self) -> str:
        return f"{self.action} {self.kind} {self.target}"


def describe(value: object) -> str:
    """A change's before or after as one line of text."""
    if value is None:
        return ""
    if value is True:
        return "disabled"
    if isinstance(value, (EntityRecord, StoredLimits)):
        return value.describe()
    return format_limits(value)  # type: ignore[arg-type]
