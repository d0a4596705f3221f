"""The records the plan works on: what a limits file asks for (`LimitsSpec`), what the table holds
(`TableState`), and one step between them (`Change`). Plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from ..core.limits import Limit, format_limits
from ..core.models import Entity

LimitSet = tuple[Limit, ...]  # sorted by name: two sets are equal when they hold the same limits


def limit_set(limits: "list[Limit] | tuple[Limit, ...]") -> LimitSet:
    return tuple(sorted(limits, key=lambda limit: limit.name))


@dataclass(frozen=True)
class EntitySpec:
    """One entity as the file declares it. The file manages its record whole: an absent name, parent or
    metadata means none, an absent cascade means false."""

    entity_id: str
    name: Optional[str] = None
    parent_id: Optional[str] = None
    cascade: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, LimitSet] = field(default_factory=dict)  # by resource (`_default_` included)

    def record(self) -> "EntityRecord":
        return EntityRecord(self.name, self.parent_id, self.cascade, dict(self.metadata))


@dataclass(frozen=True)
class LimitsSpec:
    """A whole limits file. `system` None: the file does not name system defaults."""

    system: Optional[LimitSet] = None
    resources: Mapping[str, LimitSet] = field(default_factory=dict)
    entities: Mapping[str, EntitySpec] = field(default_factory=dict)


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
    read (so a plan may delete what the file does not name)."""

    system: Optional[LimitSet] = None
    resources: Mapping[str, LimitSet] = field(default_factory=dict)
    entities: Mapping[str, Entity] = field(default_factory=dict)
    entity_limits: Mapping[str, Mapping[str, LimitSet]] = field(default_factory=dict)
    complete: bool = False


CREATE, CHANGE, DELETE = "create", "change", "delete"
SYSTEM, RESOURCE, ENTITY, ENTITY_LIMITS = "system defaults", "resource defaults", "entity", "entity limits"


@dataclass(frozen=True)
class Change:
    """One write of a plan. `before`/`after`: a LimitSet (limits) or an EntityRecord (entity), None on the
    side where the thing does not exist. An entity's delete also removes its stored limits and buckets."""

    action: str  # CREATE, CHANGE or DELETE
    kind: str  # SYSTEM, RESOURCE, ENTITY or ENTITY_LIMITS
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
        if self.kind == ENTITY:
            return str(self.entity_id)
        return f"{self.entity_id} / {self.resource}"

    def __str__(self) -> str:
        return f"{self.action} {self.kind} {self.target}"


def describe(value: object) -> str:
    """A change's before or after as one line of text."""
    if value is None:
        return ""
    if isinstance(value, EntityRecord):
        return value.describe()
    return format_limits(value)  # type: ignore[arg-type]
