"""DynamoDB's documented request limits, which moto does not enforce, checked on requests as they travel.

`enforcing(proxy)` adds rules to a FaultProxy (fault_proxy.py) that answer ValidationException, as AWS
does, to any request that breaks one of these limits, and records why in `Limits.found`:

- key attribute values (the table's and every index's) of the items and keys a request names, and the
  values an UpdateExpression SETs on them: 1 to 2048 bytes of UTF-8 for a partition key, 1 to 1024 for a
  sort key ("Service, account, and table quotas in Amazon DynamoDB": partition key length, sort key
  length; the same for a global secondary index's key attributes);
- numbers anywhere in a request: at most 38 significant digits, magnitude from 1E-130 to 9.99...E+125
  ("Supported data types and naming rules in Amazon DynamoDB", Number).

The expected values come from the documentation, not from zae_limiter's own constants. Numbers a request
makes DynamoDB compute (`tat + :k`) are checked afterwards on the stored items with `number_problems`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Iterator

from zae_limiter.core.schema import TABLE

PARTITION_KEY_BYTES = 2048
SORT_KEY_BYTES = 1024
NUMBER_DIGITS = 38
NUMBER_MAX = Decimal("9.9999999999999999999999999999999999999E+125")
NUMBER_MIN = Decimal("1E-130")

KEY_LIMITS = {TABLE.hash_key: PARTITION_KEY_BYTES, TABLE.range_key: SORT_KEY_BYTES}
for _index in TABLE.indexes:
    KEY_LIMITS[_index.hash_key] = PARTITION_KEY_BYTES
    KEY_LIMITS[_index.range_key] = SORT_KEY_BYTES

OPERATIONS = ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "BatchGetItem", "BatchWriteItem",
              "TransactWriteItems", "TransactGetItems")
_ASSIGNMENT = re.compile(r"(#\w+)\s*=\s*(:\w+)")


def significant_digits(text: str) -> int:
    mantissa = re.split("[eE]", text.strip().lstrip("+-"))[0].replace(".", "")
    return len(mantissa.strip("0")) or 1


def number_problems(value: Any, where: str = "") -> Iterator[str]:
    """Every number (N, NS) in a request or item that DynamoDB would refuse, recursively."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "N" and isinstance(inner, str):
                yield from _number_problem(inner, where)
            elif key == "NS" and isinstance(inner, list):
                for text in inner:
                    yield from _number_problem(text, where)
            else:
                yield from number_problems(inner, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from number_problems(inner, f"{where}[{i}]")


def _number_problem(text: str, where: str) -> Iterator[str]:
    try:
        number = abs(Decimal(text))
    except InvalidOperation:
        yield f"{where}: {text!r} is not a number"
        return
    if significant_digits(text) > NUMBER_DIGITS:
        yield f"{where}: {text} has {significant_digits(text)} significant digits (DynamoDB keeps {NUMBER_DIGITS})"
    if number and not NUMBER_MIN <= number <= NUMBER_MAX:
        yield f"{where}: {text} is out of DynamoDB's number range"


def key_problems(attributes: Any, where: str) -> Iterator[str]:
    if not isinstance(attributes, dict):
        return
    for name, limit in KEY_LIMITS.items():
        value = attributes.get(name)
        if isinstance(value, dict) and isinstance(value.get("S"), str):
            size = len(value["S"].encode("utf-8"))
            if not 1 <= size <= limit:
                yield f"{where}.{name}: {size} bytes (DynamoDB allows 1 to {limit})"


def _write_problems(request: dict[str, Any], where: str) -> Iterator[str]:
    for part in ("Key", "Item", "ExclusiveStartKey"):
        yield from key_problems(request.get(part), f"{where}{part}")
    expression = request.get("UpdateExpression") or ""
    names = request.get("ExpressionAttributeNames") or {}
    values = request.get("ExpressionAttributeValues") or {}
    for name_ref, value_ref in _ASSIGNMENT.findall(expression):
        attr = names.get(name_ref)
        if attr in KEY_LIMITS:
            yield from key_problems({attr: values.get(value_ref)}, f"{where}SET")


def problems(operation: str, body: dict[str, Any]) -> list[str]:
    """Why DynamoDB would refuse this request (empty: it would not, as far as these limits go)."""
    found = list(number_problems(body))
    found += _write_problems(body, "")
    for i, action in enumerate(body.get("TransactItems") or []):
        for kind, request in (action or {}).items():
            if isinstance(request, dict):
                found += _write_problems(request, f"TransactItems[{i}].{kind}.")
    for table, requests in (body.get("RequestItems") or {}).items():
        if isinstance(requests, dict):  # BatchGetItem
            for i, item_key in enumerate(requests.get("Keys") or []):
                found += key_problems(item_key, f"RequestItems[{table}].Keys[{i}]")
        elif isinstance(requests, list):  # BatchWriteItem
            for i, request in enumerate(requests):
                for kind, inner in (request or {}).items():
                    found += _write_problems(inner or {}, f"RequestItems[{table}][{i}].{kind}.")
    return found


@dataclass
class Limits:
    found: list[tuple[str, str]] = field(default_factory=list)  # (operation, problem)

    def check(self, operation: str, body: dict[str, Any]) -> bool:
        found = problems(operation, body)
        self.found.extend((operation, problem) for problem in found)
        return bool(found)


def enforcing(proxy: Any) -> Limits:
    """Make `proxy` refuse, as DynamoDB does, every request over the limits above."""
    limits = Limits()
    for operation in OPERATIONS:
        proxy.fail(
            operation, "error", when=lambda body, op=operation: limits.check(op, body), status=400,
            code="ValidationException", payload={"message": "over a DynamoDB limit (see tests/dynamodb_limits.py)"},
        )
    return limits
