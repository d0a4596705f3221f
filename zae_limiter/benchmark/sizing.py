"""What AWS would charge: DynamoDB item sizes and an estimate of write capacity units per acquire.

Emulators report their own capacity numbers (moto: 0.5 for an UpdateItem, 0 for a transaction),
which are not AWS's. This estimate applies DynamoDB's published sizing rules to the items that the
measured acquires wrote:
- an item's size is the sum over its attributes of the UTF-8 length of the name plus the value:
  a string its UTF-8 length, a number about one byte per two significant digits plus one, a binary
  its length, a boolean or null one byte, a list or map 3 bytes plus one byte per element plus the
  elements (and, for a map, the keys), a set the sum of its elements;
- a write (PutItem, UpdateItem, DeleteItem) costs 1 WCU per started KB of the item (an update is
  charged on the larger of the item before and after; in the steady state both are the same size),
  also when its condition fails;
- a transactional write costs twice that for every item in it.
Reads are not estimated: a warm acquire reads nothing, and the occasional configuration reload is
shown as requests instead.
"""

from __future__ import annotations

import base64
import math
from typing import Any, Iterable, Mapping

KB = 1024
SINGLE_ITEM_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})


def number_size(text: str) -> int:
    """Bytes DynamoDB stores for a number: one per two significant digits, plus one."""
    digits = text.lstrip("+-").lower().split("e")[0].replace(".", "")
    significant = digits.strip("0") or "0"
    return math.ceil(len(significant) / 2) + 1


def _binary_size(value: Any) -> int:
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    return len(base64.b64decode(value))  # the wire form is base64 text


def value_size(value: Mapping[str, Any]) -> int:
    """Size of one attribute value in DynamoDB JSON, e.g. {"N": "42"} or {"M": {...}}."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode("utf-8"))
    if kind == "N":
        return number_size(data)
    if kind == "B":
        return _binary_size(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode("utf-8")) for s in data)
    if kind == "NS":
        return sum(number_size(n) for n in data)
    if kind == "BS":
        return sum(_binary_size(b) for b in data)
    if kind == "L":
        return 3 + sum(1 + value_size(element) for element in data)
    if kind == "M":
        return 3 + sum(1 + len(name.encode("utf-8")) + value_size(element) for name, element in data.items())
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes of an item in DynamoDB JSON: attribute names plus values."""
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    """WCU of one standard write of an item of `size` bytes: 1 per started KB, at least 1."""
    return max(1, math.ceil(size / KB))


def estimate_write_units(requests: Mapping[str, int], written: Iterable[Mapping[str, Any]]) -> float:
    """AWS WCU for `requests` (operation -> count) on the items they wrote.

    Single-item writes are charged at the mean WCU of the written items (exact when they are all of
    one size class, as bucket items are); a transaction is charged for every written item, twice."""
    units = [write_units(item_size(item)) for item in written] or [1]
    single = sum(count for operation, count in requests.items() if operation in SINGLE_ITEM_WRITES)
    batches = requests.get("BatchWriteItem", 0)
    transactions = requests.get("TransactWriteItems", 0)
    mean = sum(units) / len(units)
    return (single + batches) * mean + transactions * 2 * sum(units)
