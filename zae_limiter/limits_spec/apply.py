"""The apply driver: reads the table's state and carries out a plan through `SyncRateLimiter`, one write
at a time, in the plan's order. A write that fails stops the apply: `ApplyFailed` says what was applied
before it and what was not, and nothing is sent again (a write whose answer never came may have landed;
planning again shows what is left)."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from ..core.errors import ZaeLimiterError
from ..sync_limiter import SyncRateLimiter
from .model import (
    CHANGE, CREATE, DELETE, DISABLED, ENTITY, ENTITY_LIMITS, RESOURCE, SYSTEM,
    Change, EntityRecord, LimitsSpec, StoredLimits, TableState,
)
from .plan import Plan, plan
from .table import read_named, read_table, update_entity_record


class ApplyFailed(ZaeLimiterError):
    """A write of the plan failed. `applied`: the writes done before it; `failed`: the one that failed
    (it may or may not have landed); `pending`: the writes not attempted."""

    def __init__(self, applied: Sequence[Change], failed: Change, pending: Sequence[Change], cause: BaseException) -> None:
        self.applied = tuple(applied)
        self.failed = failed
        self.pending = tuple(pending)
        self.cause = cause
        super().__init__(
            f"{failed} failed: {cause}. {len(self.applied)} of {len(self.applied) + 1 + len(self.pending)} writes "
            f"were applied before it, {len(self.pending)} were not attempted; plan again to see what is left"
        )


def _run(limiter: SyncRateLimiter, flow: Any) -> Any:
    return limiter._run(flow)


def read_state(limiter: SyncRateLimiter, spec: LimitsSpec, prune: bool = False) -> TableState:
    """What a plan for `spec` needs to know of the table: the whole table for a prune, else what the
    spec names (and its entities' ancestors)."""
    if prune:
        return _run(limiter, read_table(limiter._core))
    return _run(limiter, read_named(limiter._core, spec))


def plan_against(limiter: SyncRateLimiter, spec: LimitsSpec, prune: bool = False) -> Plan:
    return plan(spec, read_state(limiter, spec, prune), prune)


def _written(level: StoredLimits) -> tuple[list, Any]:
    """StoredLimits as `set_limits` takes them: the limits, and the schedule (None: none)."""
    return list(level.limits), [(cron, list(limits)) for cron, limits in level.schedule] or None


def apply_change(limiter: SyncRateLimiter, change: Change) -> None:
    """One write of a plan, through the limiter's public operations (and the record update flow)."""
    after: Any = change.after
    if change.kind == DISABLED:
        if change.action == DELETE:
            limiter.enable(change.entity_id, change.resource)
        else:
            limiter.disable(change.entity_id, change.resource)
    elif change.kind == ENTITY:
        record: EntityRecord = after
        if change.action == CREATE:
            limiter.create_entity(change.entity_id, record.name, record.parent_id, record.cascade, dict(record.metadata))  # type: ignore[arg-type]
        elif change.action == CHANGE:
            _run(limiter, update_entity_record(limiter._core, change.entity_id, record))  # type: ignore[arg-type]
        else:
            limiter.delete_entity(change.entity_id)  # type: ignore[arg-type]
    elif change.kind == ENTITY_LIMITS:
        if change.action == DELETE:
            limiter.delete_limits(change.entity_id, change.resource)  # type: ignore[arg-type]
        else:
            limits, schedule = _written(after)
            limiter.set_limits(change.entity_id, limits, change.resource, schedule=schedule)  # type: ignore[arg-type]
    elif change.kind == RESOURCE:
        if change.action == DELETE:
            limiter.delete_resource_defaults(change.resource)  # type: ignore[arg-type]
        else:
            limits, schedule = _written(after)
            limiter.set_resource_defaults(change.resource, limits, schedule=schedule)  # type: ignore[arg-type]
    elif change.kind == SYSTEM:
        if change.action == DELETE:
            limiter.delete_system_defaults()
        else:
            limits, schedule = _written(after)
            limiter.set_system_defaults(limits, schedule=schedule)
    else:  # pragma: no cover - a plan bug
        raise ValueError(f"unknown change kind {change.kind!r}")


def apply_plan(
    limiter: SyncRateLimiter, planned: Plan, on_applied: Optional[Callable[[Change], None]] = None
) -> tuple[Change, ...]:
    """Carry out `planned` in order; returns the writes applied (all of them). Raises ApplyFailed."""
    changes = planned.changes
    for index, change in enumerate(changes):
        try:
            apply_change(limiter, change)
        except Exception as error:  # noqa: BLE001 - whatever it was, the caller must learn what was applied
            raise ApplyFailed(changes[:index], change, changes[index + 1 :], error) from error
        if on_applied is not None:
            on_applied(change)
    return changes
