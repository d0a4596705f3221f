"""Which limits apply, as the client caches them (precedence: config.py).

Two caches, because they change and are checked differently:
- the *shared* configuration of a resource (its defaults and the system defaults): few items, read
  again every `config_cache_seconds`;
- each entity's *own* configuration for a resource (its record and own limits items): as many as the
  entities served, kept in a bounded LRU past `config_cache_seconds`. Every change to an entity's own
  items stamps a version (`cv`) on them and on the entity's buckets (stamps.py), and every acquire write
  carries the version it was built from, conditioned `cv <= version`. So an expired own entry can still
  be used without a read, on a bucket this client knows exists: if the entity changed meanwhile, the
  write fails on its version and the client reads again. A cold entity costs one request.

A limiter sees its own changes at once (`invalidate`), and a read begun before an invalidation caches
nothing: every invalidation moves a generation that the read checks before storing what it read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from ..core import config, schema
from ..core.acquire import Level
from ..core.batches import batch_get
from ..core.calls import Flow
from ..core.config import StoredConfig
from ..core.errors import ResourceDisabled
from ..core.limits import Limit, check_unique
from .lru import LRU
from ..core.models import Entity
from ..core.validation import check_id

@dataclass(frozen=True, slots=True)
class OwnConfig:
    """What an entity's own items say for one resource."""

    entity: Entity | None
    limits: tuple[Limit, ...] | None  # in force: the (entity, resource) item's, else the entity's `_default_`
    changes: int | None  # when a schedule next changes them (clock ns)
    disabled: str | None  # "entity_resource" or "entity"
    version: int  # the highest `cv` of these items (0: never stamped)


@dataclass(frozen=True, slots=True)
class SharedConfig:
    limits: tuple[Limit, ...] | None  # the resource's defaults, else the system's
    changes: int | None
    disabled: bool  # the resource is disabled for every entity


Entry = tuple[float, Any, "int | None"]  # (monotonic expiry, value, clock ns of the next scheduled change)


class ConfigCache:
    def __init__(self, table: str, seconds: float, size: int, clock: Callable[[], int],
                 monotonic: Callable[[], float]) -> None:
        self.table = table
        self.seconds = seconds
        self.clock = clock
        self.monotonic = monotonic
        self._own: LRU[tuple[str, str], Entry] = LRU(size)
        self._shared: LRU[str, Entry] = LRU(size)
        self._levels: LRU[tuple[str, str, Any], tuple[Any, ...]] = LRU(size)
        # Resources whose shared defaults one caller is reading again: the others keep the expired entry
        # for that round trip, rather than all reading at once when the window ends.
        self._shared_reads: set[str] = set()
        self.generation = 0

    @property
    def size(self) -> int:
        return self._own.size

    @size.setter
    def size(self, value: int) -> None:
        self._own.size = self._shared.size = self._levels.size = value

    def __len__(self) -> int:
        return len(self._own)

    def invalidate(self) -> None:
        self.generation += 1
        self._own.clear()
        self._shared.clear()
        self._levels.clear()

    def forget(self, entity_id: str, resource: str) -> None:
        """Drop an entity's own entry (a write found it changed)."""
        self._own.pop((entity_id, resource))

    def _fresh(self, entry: Entry | None) -> bool:
        return entry is not None and entry[0] > self.monotonic() and (entry[2] is None or self.clock() < entry[2])

    def _keep(self, cache: LRU, key: Any, value: Any, changes: int | None, generation: int) -> None:
        if self.seconds > 0 and generation == self.generation:
            # A schedule changes the limits at `changes`: the entry must not outlive it.
            cache.put(key, (self.monotonic() + self.seconds, value, changes))

    # -- reading ----------------------------------------------------------------------------------
    def _read(self, owners: Sequence[str], resource: str, shared: bool) -> Flow[tuple[list[OwnConfig], SharedConfig | None]]:
        """One BatchGetItem for the own items of `owners` and, if asked, the shared items."""
        generation = self.generation
        keys = [k for owner in owners for k in [schema.meta_key(owner), *config.own_keys(owner, resource)]]
        if shared:
            keys += config.shared_keys(resource)
        items = yield from batch_get(self.table, keys)
        now = self.clock()
        owns = []
        for owner in owners:
            own_keys = config.own_keys(owner, resource)
            meta = items.get(config.key_id(schema.meta_key(owner)))
            limits, changes = config.first_limits(own_keys, items, now)
            read = [items.get(config.key_id(k)) for k in [schema.meta_key(owner), *own_keys]]
            own = OwnConfig(
                entity=schema.entity_from_item(meta) if meta else None,
                limits=limits,
                changes=changes,
                disabled=config.disabled_scope(owner, resource, items, own_only=True),
                version=max((schema.version_of(item) for item in read if item), default=0),
            )
            self._keep(self._own, (owner, resource), own, changes, generation)
            owns.append(own)
        common = None
        if shared:
            limits, changes = config.first_limits(config.shared_keys(resource), items, now)
            common = SharedConfig(limits, changes, schema.disabled_of(items.get(config.key_id(schema.resource_defaults_key(resource)))))
            self._keep(self._shared, resource, common, changes, generation)
        return owns, common

    def _shared_config(self, resource: str) -> Flow[SharedConfig]:
        entry = self._shared.get(resource)
        if self._fresh(entry):
            return entry[1]  # type: ignore[index]
        _, common = yield from self._read((), resource, shared=True)
        return common  # type: ignore[return-value]

    def _own_configs(self, owners: Sequence[str], resource: str, usable: Callable[[str], bool],
                     shared: bool) -> Flow[tuple[list[tuple[OwnConfig, bool]], SharedConfig | None]]:
        """Each owner's own configuration and whether it is stale (validated by its version in the write
        rather than read again); reads what is missing in one request, with the shared items if asked."""
        found: dict[str, tuple[OwnConfig, bool]] = {}
        missing = []
        for owner in owners:
            entry = self._own.get((owner, resource))
            if self._fresh(entry):
                found[owner] = (entry[1], False)  # type: ignore[index]
            elif entry is not None and usable(owner):
                found[owner] = (entry[1], True)  # type: ignore[index]
            else:
                missing.append(owner)
        common = None
        if missing or shared:
            owns, common = yield from self._read(missing, resource, shared)
            found.update((owner, (own, False)) for owner, own in zip(missing, owns))
        return [found[owner] for owner in owners], common

    def resolve(self, entity_id: str, resource: str, fallback: Sequence[Limit] | None,
                usable: Callable[[str], bool] = lambda owner: False) -> Flow[tuple[Level, ...]]:
        """The entity's level and, under cascade, its parent's: the limits each holds for `resource`,
        with the version each level's configuration carries. `usable(owner)`: whether an expired own
        entry of that owner may be used, validated by the write (its bucket is known to exist).
        Raises ResourceDisabled when a flag turns the acquire off."""
        if fallback is None or type(fallback) is tuple:
            warm = self._warm_levels(entity_id, resource, fallback)
            if warm is not None:
                return warm
        check_id("entity_id", entity_id)
        check_id("resource", resource)
        if fallback is not None:
            fallback = tuple(check_unique(fallback, "limits"))
        shared_entry = self._shared.get(resource)
        shared_fresh = self._fresh(shared_entry)
        if not shared_fresh and shared_entry is not None and resource in self._shared_reads:
            shared_fresh = True  # another caller is reading it right now: use the one at hand meanwhile
        if not shared_fresh:
            self._shared_reads.add(resource)
        try:
            ((own, stale),), common = yield from self._own_configs((entity_id,), resource, usable, not shared_fresh)
        finally:
            if not shared_fresh:
                self._shared_reads.discard(resource)
        common = common or shared_entry[1]  # type: ignore[index]
        parent = parent_stale = None
        entity = own.entity
        if entity is not None and entity.cascade and entity.parent_id:
            ((parent, parent_stale),), _ = yield from self._own_configs((entity.parent_id,), resource, usable, False)
        # Levels are rebuilt only when what they come from changed: every acquire needs them.
        key = (entity_id, resource, fallback)
        memo = self._levels.get(key)
        if memo is not None and memo[0] is own and memo[1] is common and memo[2] is parent and memo[3] == (stale, parent_stale):
            return memo[4]
        levels = [self._level(entity_id, resource, own, bool(stale), common, fallback)]
        if parent is not None:
            parent_level = self._level(entity.parent_id, resource, parent, bool(parent_stale), common, fallback)  # type: ignore[union-attr, arg-type]
            names = {limit.name for limit in levels[0].limits}
            shared_names = tuple(limit for limit in parent_level.limits if limit.name in names)
            if shared_names:
                levels.append(replace(parent_level, limits=shared_names))
        result = tuple(levels)
        self._levels.put(key, (own, common, parent, (stale, parent_stale), result))
        return result

    def _warm_levels(self, entity_id: str, resource: str, fallback: tuple[Limit, ...] | None) -> tuple[Level, ...] | None:
        """The levels built last time, if everything they came from is still the fresh entry they were
        built from: the warm acquire's path, with no read and nothing rebuilt. The ids were checked
        when the entry was made (its key holds these very strings)."""
        memo = self._levels.get((entity_id, resource, fallback))
        if memo is None or memo[3] != (False, None if memo[2] is None else False):
            return None
        own_entry, shared_entry = self._own.get((entity_id, resource)), self._shared.peek(resource)
        if (own_entry is None or own_entry[1] is not memo[0] or not self._fresh(own_entry)
                or shared_entry is None or shared_entry[1] is not memo[1] or not self._fresh(shared_entry)):
            return None
        if memo[2] is not None:
            entity = memo[0].entity
            parent_entry = self._own.get((entity.parent_id, resource))
            if parent_entry is None or parent_entry[1] is not memo[2] or not self._fresh(parent_entry):
                return None
        return memo[4]

    @staticmethod
    def _level(owner: str, resource: str, own: OwnConfig, stale: bool, common: SharedConfig,
               fallback: Sequence[Limit] | None) -> Level:
        if own.disabled is not None:
            raise ResourceDisabled(owner, resource, own.disabled)
        if common.disabled:
            raise ResourceDisabled(owner, resource, "resource")
        limits = config.effective(own.limits or common.limits, fallback, owner, resource)
        return Level(owner, limits, version=own.version, stale=stale)

    def levels(self, entity_id: str, resource: str, fallback: Sequence[Limit] | None) -> Flow[tuple[Level, ...]]:
        """`resolve` from fresh configuration only (reads, views and tools)."""
        return self.resolve(entity_id, resource, fallback)

    def stored(self, entity_id: str, resource: str) -> Flow[StoredConfig]:
        """The stored configuration of (entity, resource) as one record (flags not raised)."""
        ((own, _),), common = yield from self._own_configs((entity_id,), resource, lambda owner: False, True)
        assert common is not None
        disabled = (entity_id, own.disabled) if own.disabled else ((entity_id, "resource") if common.disabled else None)
        stored = StoredConfig(own.entity, own.limits or common.limits, None, disabled)
        if stored.parent_id:
            ((parent, _),), _ = yield from self._own_configs((stored.parent_id,), resource, lambda owner: False, False)
            if disabled is None and parent.disabled:
                disabled = (stored.parent_id, parent.disabled)
            stored = StoredConfig(own.entity, stored.limits, parent.limits or common.limits, disabled)
        return stored

    def seed(self, entity_id: str, resource: str, stored: StoredConfig, expires: float = float("inf")) -> None:
        """Cache `stored` as if read (tests of the flows drive them without a table)."""
        own = OwnConfig(stored.entity, stored.limits, None, None, 0)
        self._own.put((entity_id, resource), (expires, own, None))
        self._shared.put(resource, (expires, SharedConfig(None, None, False), None))
