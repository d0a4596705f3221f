"""What an HTTP response says about a rate limit: pure functions from the limiter's answers to status
codes, header fields and problem bodies. The ASGI middleware, the WSGI middleware and the FastAPI
dependency all answer through these, so the three cannot drift.

Header fields follow the IETF draft "RateLimit header fields for HTTP"
(draft-ietf-httpapi-ratelimit-headers-11), in Structured Field syntax (RFC 9651), one policy per limit:

    RateLimit-Policy: "rpm";q=5;w=60, "tpm";q=50000;w=300
    RateLimit: "rpm";r=4;t=12, "tpm";r=49500;t=1

A token bucket maps onto the draft's terms as follows (`limit` holds `capacity` tokens, refilled at
`refill_amount` per `refill_period_seconds`):
  q  the quota: the bucket's capacity (whole tokens, rounded down).
  w  the window: the seconds the refill takes to fill an empty bucket, capacity / rate (rounded up, at
     least 1). `Limit.per_minute("rpm", 5)` is `q=5;w=60`; `per_minute("tpm", 10_000, burst=50_000)` is
     `q=50000;w=300`.
  r  the available quota: whole tokens the bucket holds now (rounded down; 0 while in debt).
  t  the effective window, which the draft defines as the seconds within which the client can use no
     more than `r`: the seconds until the bucket next gains a whole token, i.e. until `r` would grow,
     rounded up. A full bucket cannot grow, so there it is one emission interval (how long a token taken
     now takes to come back). Not "seconds until full": within that time a partly used bucket gains
     more than `r` (a bucket 3 of 5 used refills 3 tokens in 36 s, not 2). On a refusal of one request
     against an empty `rpm` bucket, `t` equals `Retry-After`, as the draft asks (Retry-After is never
     earlier than the end of the window).
Problem bodies are RFC 9457 `application/problem+json`; a refusal uses the draft's `quota-exceeded`
problem type with its `violated-policies` member, plus the members of `RateLimitExceeded.as_dict()`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from .core.errors import LimitStatus, RateLimitExceeded, ResourceDisabled
from .core.limits import Limit

PROBLEM_JSON = "application/problem+json"
QUOTA_EXCEEDED_TYPE = "https://iana.org/assignments/http-problem-types#quota-exceeded"
QUOTA_EXCEEDED_TITLE = "Request cannot be satisfied as assigned quota has been exceeded"
#: On a response the limiter let through unrecorded (DynamoDB unavailable, `on_unavailable="allow"`).
UNCHECKED_HEADER = "zae-limiter-unchecked"
UNCHECKED_VALUE = "?1"  # a Structured Field boolean: true
# Amounts are thousandths of a token; a float just under a whole number is that number.
_TOKEN_DIGITS = 6


@dataclass(frozen=True)
class LimitState:
    """One limit of one entity as a response reports it: its parameters and the tokens it holds."""

    limit: Limit
    available: float


@dataclass(frozen=True)
class HttpAnswer:
    """A complete response the limiter gives instead of the application's."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


# -- Structured Field values (RFC 9651) --------------------------------------------------------------
def sf_string(value: str) -> str:
    """A Structured Field String: printable ASCII only, with `"` and `\\` escaped."""
    if any(not (0x20 <= ord(ch) <= 0x7E) for ch in value):
        raise ValueError(f"a Structured Field string holds printable ASCII only, got {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _item(name: str, parameters: Iterable[tuple[str, int]]) -> str:
    return sf_string(name) + "".join(f";{key}={value}" for key, value in parameters)


# -- the numbers -------------------------------------------------------------------------------------
def quota(limit: Limit) -> int:
    return math.floor(round(limit.capacity, _TOKEN_DIGITS))


def window_seconds(limit: Limit) -> int:
    seconds = limit.capacity * limit.refill_period_seconds / limit.refill_amount
    return max(1, math.ceil(round(seconds, 9)))


def remaining(available: float) -> int:
    return max(0, math.floor(round(available, _TOKEN_DIGITS)))


def seconds_to_next_token(limit: Limit, available: float) -> int:
    """The draft's `t`: seconds (rounded up) until `remaining(available)` would grow by one."""
    if round(available, _TOKEN_DIGITS) >= limit.capacity:
        tokens = 1.0
    else:
        tokens = min(remaining(available) + 1, limit.capacity) - available
    return max(0, math.ceil(round(tokens * limit.refill_period_seconds / limit.refill_amount, 9)))


# -- header fields -----------------------------------------------------------------------------------
def policy_field(limits: Sequence[Limit]) -> str:
    """The `RateLimit-Policy` value: one quota policy per limit."""
    return ", ".join(_item(limit.name, (("q", quota(limit)), ("w", window_seconds(limit)))) for limit in limits)


def ratelimit_field(states: Sequence[LimitState]) -> str:
    """The `RateLimit` value: one service limit per limit name. Under cascade a name has a state per
    entity; the one leaving the client least (then the longest wait) is what binds it."""
    binding: dict[str, tuple[int, int]] = {}
    for state in states:
        entry = (remaining(state.available), seconds_to_next_token(state.limit, state.available))
        held = binding.get(state.limit.name)
        if held is None or entry[0] < held[0] or (entry[0] == held[0] and entry[1] > held[1]):
            binding[state.limit.name] = entry
    return ", ".join(_item(name, (("r", r), ("t", t))) for name, (r, t) in binding.items())


def ratelimit_headers(limits: Sequence[Limit], states: Sequence[LimitState]) -> list[tuple[str, str]]:
    if not limits:
        return []
    return [("ratelimit-policy", policy_field(limits)), ("ratelimit", ratelimit_field(states))]


def unchecked_headers() -> list[tuple[str, str]]:
    return [(UNCHECKED_HEADER, UNCHECKED_VALUE)]


def states_for(statuses: Sequence[LimitStatus], limits: dict[tuple[str, str], Limit]) -> list[LimitState]:
    """Pair statuses with their limits, keyed by (entity_id, limit name); statuses of unknown limits
    are left out (their window cannot be told)."""
    found = []
    for status in statuses:
        limit = limits.get((status.entity_id, status.name))
        if limit is not None:
            found.append(LimitState(limit, status.available))
    return found


# -- complete answers --------------------------------------------------------------------------------
def problem(status: int, title: str, detail: str, type_: str = "about:blank", **members: Any) -> HttpAnswer:
    body = {"type": type_, "title": title, "status": status, "detail": detail, **members}
    encoded = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    return HttpAnswer(status, [("content-type", PROBLEM_JSON), ("content-length", str(len(encoded)))], encoded)


def refused(error: RateLimitExceeded, limits: Sequence[Limit], states: Sequence[LimitState]) -> HttpAnswer:
    """429 with Retry-After, the RateLimit fields and the draft's quota-exceeded problem."""
    violated = list(dict.fromkeys(status.name for status in error.exceeded))
    answer = problem(
        429, QUOTA_EXCEEDED_TITLE, str(error), QUOTA_EXCEEDED_TYPE, **{"violated-policies": violated}, **error.as_dict()
    )
    headers = [("retry-after", error.retry_after_header), *ratelimit_headers(limits, states), *answer.headers]
    return HttpAnswer(429, headers, answer.body)


def disabled(error: ResourceDisabled) -> HttpAnswer:
    """403: waiting does not help, so no Retry-After."""
    return problem(error.status_code, "Forbidden", str(error), **error.as_dict())


def unavailable(retry_after_seconds: int) -> HttpAnswer:
    """503 when DynamoDB cannot be reached and the limiter blocks (`on_unavailable="block"`)."""
    answer = problem(
        503, "Service Unavailable", "the rate limiter cannot reach its store; nothing was admitted",
        error="rate_limiter_unavailable",
    )
    return HttpAnswer(503, [("retry-after", str(retry_after_seconds)), *answer.headers], answer.body)


def bad_key(detail: str) -> HttpAnswer:
    """400 when the request carries no usable rate-limit key (missing header, unusable characters)."""
    return problem(400, "Bad Request", detail, error="rate_limit_key_invalid")
