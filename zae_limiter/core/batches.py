"""Requests that come back in pieces, as flows: consistent batch reads and batch writes in rounds until
DynamoDB has done every key, and queries and scans page by page. Defined once for every flow."""

from __future__ import annotations

from typing import Any, Sequence

from . import config
from .answers import backoff
from .calls import Call, Flow
from .errors import RateLimiterUnavailable

MAX_BATCH_ROUNDS = 8


def batch_get(table: str, keys: Sequence[dict]) -> Flow[dict[tuple[str, str], dict]]:
    """Consistent reads of `keys`, by (PK, SK)."""
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


def batch_write(table: str, requests: list[dict]) -> Flow[None]:
    for round_ in range(MAX_BATCH_ROUNDS):
        response = yield Call("BatchWriteItem", {"RequestItems": {table: requests}})
        requests = response.get("UnprocessedItems", {}).get(table, [])
        if not requests:
            return
        yield backoff(round_)
    raise RateLimiterUnavailable(f"BatchWriteItem left {len(requests)} writes unprocessed")


def pages(operation: str, request: dict[str, Any]) -> Flow[list[dict]]:
    """Every item a Query or Scan returns, following LastEvaluatedKey."""
    items: list[dict] = []
    start = None
    while True:
        response = yield Call(operation, {**request, **({"ExclusiveStartKey": start} if start else {})})
        items.extend(response.get("Items", []))
        start = response.get("LastEvaluatedKey")
        if not start:
            return items
