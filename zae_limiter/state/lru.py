"""A bounded map that forgets its least recently used entries: the client's per-bucket and per-entity
caches must not grow with the number of keys it has ever served, and eviction must cost O(1) however
many keys pass through (a multi-tenant API rotates through far more keys than it can hold)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, Iterator, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """Past `size` entries, putting a new one drops the least recently used. Each operation is one or
    two calls into OrderedDict's C implementation, so threads sharing it never see it corrupt; a race
    between two of them at worst evicts one entry early."""

    __slots__ = ("size", "_data")

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            try:
                self._data.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile
                pass
        return value

    def peek(self, key: K) -> V | None:
        """The value without counting it as a use."""
        return self._data.get(key)

    def put(self, key: K, value: V) -> None:
        data = self._data
        data[key] = value
        data.move_to_end(key)
        while len(data) > self.size:
            try:
                data.popitem(last=False)
            except KeyError:
                break

    def pop(self, key: K) -> V | None:
        return self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def keys(self) -> list[K]:
        return list(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._data))
