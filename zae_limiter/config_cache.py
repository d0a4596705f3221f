"""Which limits apply, as the client caches them: the stored configuration of each (entity, resource)
and the levels an acquire resolves to, for `config_cache_seconds` (precedence: config.py).

A limiter sees its own changes at once (`invalidate`), and a read begun before an invalidation caches
nothing: every invalidation moves a generation that the read checks before storing what it read.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from . import config, schema
from .acquire import Level
from .calls import Call, Flow, Sleep
from .config import StoredConfig
from .errors import RateLimiterUnavailable, ResourceDisabled
from .limits import Limit, check_unique
from .lru import LRU
from .validation import check_id

MAX_BATCH_ROUNDS = 8

LevelsKey = tuple[str, str, "tuple[Limit, ...] | None"]


def batch_get(table: str, keys: Sequence[dict], backoff: Callable[[int], Sleep]) -> Flow[dict[tuple[str, str], dict]]:
    """Consistent reads of `keys`, in rounds until DynamoDB has answered for every one."""
    items: dict[tuple[str, str], dict] = {}
    pending: list[dict] = list(keys)
    for round_ in range(MAX_BATCH_ROUNDS):
        if not pending:
            return items
        response = yield Call("BatchGetItem", {"RequestItems": {table: {"Keys": pending, "ConsistentRead": True}}})
        for item in response.get("Responses", {}).get(table, []):
            items[config.key_id(item)] = item
        pending = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
        if pending:
            yield backoff(round_)
    raise RateLimiterUnavailable(f"BatchGetItem left {len(pending)} keys unprocessed after {MAX_BATCH_ROUNDS} rounds")


class ConfigCache:
    def __init__(self, table: str, seconds: float, size: int, clock: Callable[[], int],
                 monotonic: Callable[[], float], backoff: Callable[[int], Sleep]) -> None:
        self.table = table
        self.seconds = seconds
        self.clock = clock
        self.monotonic = monotonic
        self.backoff = backoff
        self._configs: LRU[tuple[str, str], tuple[float, StoredConfig]] = LRU(size)
        # The levels an acquire resolves to, by (entity, resource, limits passed), until the stored
        # configuration they come from expires: every acquire needs them, a local rejection included.
        self._levels: LRU[LevelsKey, tuple[float, tuple[Level, ...]]] = LRU(size)
        self.generation = 0

    @property
    def size(self) -> int:
        return self._configs.size

    @size.setter
    def size(self, value: int) -> None:
        self._configs.size = self._levels.size = value

    def __len__(self) -> int:
        return len(self._configs)

    def invalidate(self) -> None:
        self.generation += 1
        self._configs.clear()
        self._levels.clear()

    def stored(self, entity_id: str, resource: str) -> Flow[StoredConfig]:
        cached = self._configs.get((entity_id, resource))
        if cached is not None and cached[0] > self.monotonic():
            return cached[1]
        generation = self.generation
        own = config.own_keys(entity_id, resource)
        shared = config.shared_keys(resource)
        items = yield from batch_get(self.table, [schema.meta_key(entity_id), *own, *shared], self.backoff)
        meta = items.get(config.key_id(schema.meta_key(entity_id)))
        entity = schema.entity_from_item(meta) if meta else None
        now = self.clock()
        limits, changes = config.first_limits(own + shared, items, now)
        scope = config.disabled_scope(entity_id, resource, items)
        disabled = None if scope is None else (entity_id, scope)
        stored = StoredConfig(entity, limits, None, disabled)
        if stored.parent_id:
            parent_id = stored.parent_id
            parent_own = config.own_keys(parent_id, resource)
            parent_items = {**items, **(yield from batch_get(self.table, parent_own, self.backoff))}
            parent_limits, parent_changes = config.first_limits(parent_own + shared, parent_items, now)
            changes = min((c for c in (changes, parent_changes) if c is not None), default=None)
            if disabled is None:  # a cascading entity is off when its parent is
                scope = config.disabled_scope(parent_id, resource, parent_items)
                disabled = None if scope is None else (parent_id, scope)
            stored = StoredConfig(entity, limits, parent_limits, disabled)
        if self.seconds > 0 and generation == self.generation:
            expires = self.monotonic() + self.seconds
            if changes is not None:  # a schedule changes the limits then: the cache must not outlive it
                expires = min(expires, self.monotonic() + max(0, changes - now) / 1e9)
            self._configs.put((entity_id, resource), (expires, stored))
        return stored

    def levels(self, entity_id: str, resource: str, fallback: Sequence[Limit] | None) -> Flow[tuple[Level, ...]]:
        """The entity's level and, under cascade, its parent's: the limits each holds for `resource`.
        Raises ResourceDisabled when a flag turns the acquire off."""
        check_id("entity_id", entity_id)
        check_id("resource", resource)
        if fallback is not None:
            fallback = tuple(check_unique(fallback, "limits"))
        key = (entity_id, resource, fallback)
        cached = self._levels.get(key)
        if cached is not None and cached[0] > self.monotonic():
            return cached[1]
        stored = yield from self.stored(entity_id, resource)
        if stored.disabled is not None:
            raise ResourceDisabled(stored.disabled[0], resource, stored.disabled[1])
        own = config.effective(stored.limits, fallback, entity_id, resource)
        levels = [Level(entity_id, own)]
        if stored.parent_id:
            names = {limit.name for limit in own}
            parent = config.effective(stored.parent_limits, fallback, stored.parent_id, resource)
            shared = tuple(limit for limit in parent if limit.name in names)
            if shared:
                levels.append(Level(stored.parent_id, shared))
        result = tuple(levels)
        entry = self._configs.peek((entity_id, resource))
        # Only with the entry these levels came from: one stored meanwhile (limits changed, another caller
        # read them again) must not lend its later expiry to levels built from the older configuration.
        if entry is not None and entry[1] is stored:
            self._levels.put(key, (entry[0], result))
        return result

    def entry(self, entity_id: str, resource: str) -> Any:
        """The cached (expiry, StoredConfig) of (entity, resource), if any (for tests and tools)."""
        return self._configs.peek((entity_id, resource))

    def seed(self, entity_id: str, resource: str, stored: StoredConfig, expires: float = float("inf")) -> None:
        """Cache `stored` as if read (tests of the flows drive them without a table)."""
        self._configs.put((entity_id, resource), (expires, stored))
