"""The plan: what a limits file asks for against what the table holds -> the ordered writes that make the
table so. A pure function: no I/O, the same answer for the CLI (`limits plan/apply`) and the Pulumi
resource (`pulumi_component.ZaeLimits`).

Order (each write's prerequisites come before it):
1. system defaults, then resource defaults (create or change), then resources' disabled flags;
2. entities parents first, each followed by its stored limits (create or change) and its disabled flags:
   a new entity's parent exists before it, and an entity moves to its new parent before its old one is
   deleted;
3. with prune only: stored limits and disabled flags the file no longer names for its entities, then
   entities the file no longer names, children first, then resource defaults and flags, then system
   defaults.

A level's stored limits are its limits and its schedule: a level the file names holds exactly the file's
schedule (none when it names none). A disabled flag the file names (`disabled: true` or `false`) is set or
lifted; one it does not name is left alone, unless pruning.

What prune deletes is what `state` holds and the file does not name, except the ancestors of the file's
entities (deleting one would leave a named entity pointing at nothing; they are left alone whole). So
for a whole-table prune, `state` must be the whole table (`state.read_table`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping, Optional

from .document import SpecError, path_text
from .model import (
    CHANGE, CREATE, DELETE, DISABLED, ENTITY, ENTITY_LIMITS, RESOURCE, SYSTEM,
    Change, EntityRecord, FlagKey, LimitsSpec, StoredLimits, TableState,
)


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]

    @property
    def empty(self) -> bool:
        return not self.changes

    def count(self, action: str) -> int:
        return sum(1 for change in self.changes if change.action == action)

    @property
    def deletes(self) -> tuple[Change, ...]:
        return tuple(change for change in self.changes if change.action == DELETE)

    def summary(self) -> str:
        if self.empty:
            return "no changes"
        return f"{self.count(CREATE)} to create, {self.count(CHANGE)} to change, {self.count(DELETE)} to delete"


def plan(spec: LimitsSpec, state: TableState, prune: bool = False) -> Plan:
    """The writes that turn `state` into what `spec` declares. Raises SpecError when the file cannot be
    applied to this table: a parent that exists nowhere, or parents that would form a cycle."""
    parents = _desired_parents(spec, state)
    problems = list(_parent_problems(spec, state, parents))
    if problems:
        raise SpecError(problems, "limits spec (against the table)")
    changes: list[Change] = []
    if spec.system is not None:
        changes.extend(_limits_change(SYSTEM, None, None, state.system, spec.system))
    for resource in sorted(spec.resources):
        changes.extend(_limits_change(RESOURCE, None, resource, state.resources.get(resource), spec.resources[resource]))
    for resource in sorted(spec.disabled_resources):
        changes.extend(_flag_change((None, resource), state, spec.disabled_resources[resource]))
    for entity_id in _parents_first(spec.entities, parents):
        changes.extend(_entity_changes(spec, state, entity_id))
    if prune:
        changes.extend(_prune(spec, state, parents))
    return Plan(tuple(changes))


def _limits_change(
    kind: str, entity_id: Optional[str], resource: Optional[str], before: Optional[StoredLimits], after: StoredLimits
) -> Iterator[Change]:
    if before is None:
        yield Change(CREATE, kind, entity_id, resource, None, after)
    elif before != after:
        yield Change(CHANGE, kind, entity_id, resource, before, after)


def _flag_change(key: FlagKey, state: TableState, disabled: bool) -> Iterator[Change]:
    if disabled and key not in state.disabled:
        yield Change(CREATE, DISABLED, key[0], key[1], None, True)
    elif not disabled and key in state.disabled:
        yield Change(DELETE, DISABLED, key[0], key[1], True, None)


def _entity_changes(spec: LimitsSpec, state: TableState, entity_id: str) -> Iterator[Change]:
    wanted = spec.entities[entity_id]
    current = state.entities.get(entity_id)
    record = wanted.record()
    if current is None:
        yield Change(CREATE, ENTITY, entity_id, None, None, record)
    elif EntityRecord.of(current) != record:
        yield Change(CHANGE, ENTITY, entity_id, None, EntityRecord.of(current), record)
    stored = state.entity_limits.get(entity_id, {})
    for resource in sorted(wanted.limits):
        yield from _limits_change(ENTITY_LIMITS, entity_id, resource, stored.get(resource), wanted.limits[resource])
    for key, disabled in sorted(wanted.flags().items(), key=_flag_order):
        yield from _flag_change(key, state, disabled)


def _flag_order(entry: "tuple[FlagKey, object]") -> tuple[str, str]:
    (entity_id, resource), _ = entry
    return (entity_id or "", resource or "")  # the whole entity's flag before its resources'


def _desired_parents(spec: LimitsSpec, state: TableState) -> dict[str, Optional[str]]:
    """Every known entity's parent once the file is applied: the file's word for its entities, the
    table's for the rest."""
    parents: dict[str, Optional[str]] = {e: entity.parent_id for e, entity in state.entities.items()}
    parents.update({e: entity.parent_id for e, entity in spec.entities.items()})
    return parents


def _parent_problems(spec: LimitsSpec, state: TableState, parents: Mapping[str, Optional[str]]) -> Iterator[tuple[str, str]]:
    for entity_id in sorted(spec.entities):
        parent = spec.entities[entity_id].parent_id
        if parent is None:
            continue
        where = path_text(["entities", entity_id, "parent"])
        if parent not in parents:
            yield where, f"entity {parent!r} is neither in this file nor in the table"
            continue
        chain = [entity_id]
        while parent is not None and parent not in chain:
            chain.append(parent)
            parent = parents.get(parent)
        if parent is not None:
            yield where, "parents would form a cycle: " + " -> ".join(chain[chain.index(parent):] + [parent])


def _depth(entity_id: str, parents: Mapping[str, Optional[str]]) -> int:
    """How many ancestors an entity has (cycles were refused; `seen` only bounds the walk)."""
    depth, seen, parent = 0, {entity_id}, parents.get(entity_id)
    while parent is not None and parent not in seen:
        seen.add(parent)
        depth, parent = depth + 1, parents.get(parent)
    return depth


def _parents_first(entities: Mapping[str, object], parents: Mapping[str, Optional[str]]) -> list[str]:
    return sorted(entities, key=lambda e: (_depth(e, parents), e))


def _ancestors(spec: LimitsSpec, parents: Mapping[str, Optional[str]]) -> set[str]:
    found: set[str] = set()
    for entity_id in spec.entities:
        parent = parents.get(entity_id)
        while parent is not None and parent not in found:
            found.add(parent)
            parent = parents.get(parent)
    return found - set(spec.entities)


def _prune(spec: LimitsSpec, state: TableState, parents: Mapping[str, Optional[str]]) -> Iterator[Change]:
    left_alone = _ancestors(spec, parents)
    doomed = [e for e in state.entities if e not in spec.entities and e not in left_alone]
    for entity_id in sorted(state.entity_limits):
        if entity_id in left_alone or entity_id in doomed:
            continue  # an ancestor's limits are not the file's; a doomed entity's go with it
        named = spec.entities[entity_id].limits if entity_id in spec.entities else {}
        for resource in sorted(set(state.entity_limits[entity_id]) - set(named)):
            yield Change(DELETE, ENTITY_LIMITS, entity_id, resource, state.entity_limits[entity_id][resource], None)
    unnamed = sorted((key for key in state.disabled if key not in spec.flags()), key=lambda key: _flag_order((key, None)))
    for entity_id, resource in unnamed:
        if entity_id is not None and entity_id not in left_alone and entity_id not in doomed:
            yield Change(DELETE, DISABLED, entity_id, resource, True, None)
    current_parents = {e: entity.parent_id for e, entity in state.entities.items()}
    for entity_id in sorted(doomed, key=lambda e: (-_depth(e, current_parents), e)):
        stored = sorted(state.entity_limits.get(entity_id, {}))
        note = f"with its stored limits ({', '.join(stored)}) and its buckets" if stored else "with its buckets"
        yield Change(DELETE, ENTITY, entity_id, None, EntityRecord.of(state.entities[entity_id]), None, note)
    for resource in sorted(set(state.resources) - set(spec.resources)):
        yield Change(DELETE, RESOURCE, None, resource, state.resources[resource], None)
    for entity_id, resource in unnamed:
        if entity_id is None:
            yield Change(DELETE, DISABLED, None, resource, True, None)
    if spec.system is None and state.system is not None:
        yield Change(DELETE, SYSTEM, None, None, state.system, None)
