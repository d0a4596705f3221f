"""What the web tests read back: the draft's header fields parsed, the bucket counters as stored."""

from __future__ import annotations

import math
import re
import uuid
from typing import Any

from zae_limiter.core import schema
from zae_limiter.transport.clients import make_client

from hammer import HARNESS

_ITEM = re.compile(r'^"((?:[^"\\]|\\.)*)"((?:;[a-z][a-z0-9_.*-]*=\d+)*)$')


def structured_list(value: str) -> dict[str, dict[str, int]]:
    """A Structured Field List of String items with Integer parameters (RFC 9651), by item: what the
    RateLimit-Policy and RateLimit fields hold. Raises on anything else."""
    items: dict[str, dict[str, int]] = {}
    for member in value.split(","):
        match = _ITEM.match(member.strip())
        assert match, f"not a String item with Integer parameters: {member!r} in {value!r}"
        parameters = {}
        for parameter in match.group(2).split(";")[1:]:
            name, number = parameter.split("=")
            parameters[name] = int(number)
        items[match.group(1)] = parameters
    return items


def fresh(prefix: str = "key") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def counters(endpoint_url: str, table_name: str, entity_id: str, resource: str) -> dict[str, float]:
    """Tokens consumed per limit, as the bucket item's counters hold them (each consume, adjust and
    refund moves them by exactly its amount, whatever the refill)."""
    client = make_client("dynamodb", "us-east-1", endpoint_url, HARNESS)
    try:
        item = client.get_item(TableName=table_name, Key=schema.bucket_key(entity_id, resource), ConsistentRead=True)
    finally:
        client.close()
    return {name: milli / 1000 for name, milli in schema.bucket_counters(item.get("Item")).items()}


def wait_range(interval: float, elapsed_min: float, elapsed_max: float) -> range:
    """Whole seconds (rounded up) a wait of `interval - elapsed` can show, for an elapsed time known
    to lie between the bounds a test measured around the requests."""
    return range(max(0, math.ceil(interval - elapsed_max - 1e-9)), math.ceil(interval - elapsed_min - 1e-9) + 1)


def problem(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/problem+json", response.headers
    return response.json()
