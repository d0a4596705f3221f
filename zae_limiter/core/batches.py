"""Requests that come back in pieces, as flows: consistent batch reads and batch writes in rounds until
DynamoDB has done every key, and queries and scans page by page. Defined once for every flow."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

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


def pages(call: Call) -> Flow[list[dict]]:
    """Every item a Query or Scan (`call`) returns, following LastEvaluatedKey."""
    items: list[dict] = []
    while True:
        response = yield call
        items.extend(response.get("Items", []))
        start = response.get("LastEvaluatedKey")
        if not start:
            return items
        call = replace(call, request={**call.request, "ExclusiveStartKey": start})
