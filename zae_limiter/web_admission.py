"""Admitting one web request: the decisions the ASGI and WSGI middlewares and the FastAPI dependency
share. Every decision is a plain function; the two drivers at the bottom (`admit_async`,
`admit_sync`) only add the calls (the key and consume functions, the acquire).

What an admission leaves:
  answer   an HttpAnswer to send instead of the application's (429, 403, 503, 400), or None;
  lease    the lease (None when answered);
  headers  header fields for the application's response (the RateLimit fields, or the
           `zae-limiter-unchecked` marker when DynamoDB was unavailable and the limiter allowed it);
  context  the acquire context manager, still entered: the caller exits it once the response is known
           (`finish`), which refunds the lease when asked to.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from . import http_headers
from .core.acquire import Level, statuses
from .core.errors import (
    BucketContention,
    RateLimiterUnavailable,
    RateLimitExceeded,
    ResourceDisabled,
    ValidationError,
)
from .http_headers import HttpAnswer, LimitState
from .core.limits import Limit
from .web_rules import Rule

REFUND_STATUSES = range(500, 600)
DEFAULT_STATE_KEY = "rate_limit_lease"


class ErrorResponse(Exception):
    """Handed to the acquire's exit when the application answered with a refunded status (5xx by
    default): the acquire's own refund path then gives back exactly what the lease holds."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"the application answered {status}")


@dataclass
class Admission:
    answer: HttpAnswer | None = None
    lease: Any = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    context: Any = None


# -- decisions ---------------------------------------------------------------------------------------
def entity_of(raw_key: Any, rule: Rule) -> str | HttpAnswer:
    if raw_key is None or raw_key == "":
        return http_headers.bad_key(f"the request carries no rate-limit key for {rule.resource!r}")
    return raw_key if isinstance(raw_key, str) else str(raw_key)


def level_limits(levels: Sequence[Level]) -> dict[tuple[str, str], Limit]:
    return {(level.entity_id, limit.name): limit for level in levels for limit in level.limits}


def admitted_headers(lease: Any) -> list[tuple[str, str]]:
    """The RateLimit fields for an admitted request, from this client's view of the buckets right after
    the acquire's write (the write returns the state it left); with cascade, the parent's too."""
    if lease.unchecked:
        return http_headers.unchecked_headers()
    state = lease._state
    core = lease._limiter._core
    now = core.clock()
    found: list[LimitState] = []
    for level in state.levels:
        tats = core.known_tats(level.entity_id, state.resource)
        by_name = level.by_name
        for status in statuses(level, state.resource, {}, tats, now):
            found.append(LimitState(by_name[status.name], status.available))
    return http_headers.ratelimit_headers(state.levels[0].limits, found)


def refusal_answer(error: RateLimitExceeded, levels: Sequence[Level] | None) -> HttpAnswer:
    if not levels:  # the limits could not be read back: still a complete 429, without RateLimit fields
        return http_headers.refused(error, (), ())
    states = http_headers.states_for(error.statuses, level_limits(levels))
    return http_headers.refused(error, levels[0].limits, states)


def error_answer(error: BaseException, unavailable_retry_after: int) -> HttpAnswer | None:
    """The answer for an acquire that raised anything but a refusal; None: not ours to answer."""
    if isinstance(error, ResourceDisabled):
        return http_headers.disabled(error)
    if isinstance(error, (RateLimiterUnavailable, BucketContention)):
        return http_headers.unavailable(unavailable_retry_after)
    if isinstance(error, ValidationError) and error.field == "entity_id":
        return http_headers.bad_key(f"the request's rate-limit key is not usable: {error}")
    return None


def consume_of(rule: Rule, request: Any) -> Any:
    return rule.consume(request) if callable(rule.consume) else rule.consume


def should_refund(status: int | None, refund_statuses: Any) -> bool:
    return status is not None and status in refund_statuses


def check_options(refund_statuses: Any, unavailable_retry_after: Any) -> tuple[Any, int]:
    if refund_statuses is None:
        refund_statuses = ()
    if not hasattr(refund_statuses, "__contains__"):
        raise ValidationError("refund_statuses", "must be a container of HTTP status codes, e.g. range(500, 600)")
    if not isinstance(unavailable_retry_after, int) or isinstance(unavailable_retry_after, bool) or unavailable_retry_after < 0:
        raise ValidationError("unavailable_retry_after", f"must be whole seconds >= 0, got {unavailable_retry_after!r}")
    return refund_statuses, unavailable_retry_after


# -- drivers -----------------------------------------------------------------------------------------
async def _resolved(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _key_of(rule: Rule, request: Any) -> Any:
    try:
        return rule.key(request)
    except LookupError:  # `request.headers["x-api-key"]` on a request without it: no key
        return None


async def _async_key_of(rule: Rule, request: Any) -> Any:
    try:
        return await _resolved(_key_of(rule, request))
    except LookupError:
        return None


async def admit_async(limiter: Any, rule: Rule, request: Any, unavailable_retry_after: int = 1) -> Admission:
    entity = entity_of(await _async_key_of(rule, request), rule)
    if isinstance(entity, HttpAnswer):
        return Admission(answer=entity)
    consume: Mapping[str, float] = await _resolved(consume_of(rule, request))
    context = limiter.acquire(entity, rule.resource, rule.limits, consume=consume)
    try:
        lease = await context.__aenter__()
    except RateLimitExceeded as error:
        try:  # cached by the acquire that just ran: no request unless the config cache is off
            levels = await limiter._run(limiter._core.levels(entity, rule.resource, rule.limits))
        except Exception:
            levels = None
        return Admission(answer=refusal_answer(error, levels))
    except Exception as error:
        answer = error_answer(error, unavailable_retry_after)
        if answer is None:
            raise
        return Admission(answer=answer)
    return Admission(lease=lease, headers=admitted_headers(lease), context=context)


def admit_sync(limiter: Any, rule: Rule, request: Any, unavailable_retry_after: int = 1) -> Admission:
    entity = entity_of(_key_of(rule, request), rule)
    if isinstance(entity, HttpAnswer):
        return Admission(answer=entity)
    consume = consume_of(rule, request)
    if inspect.isawaitable(consume):
        consume.close()
        raise ValidationError("Rule.consume", "under WSGI the consume function must return a mapping, not a coroutine")
    context = limiter.acquire(entity, rule.resource, rule.limits, consume=consume)
    try:
        lease = context.__enter__()
    except RateLimitExceeded as error:
        try:
            levels = limiter._run(limiter._core.levels(entity, rule.resource, rule.limits))
        except Exception:
            levels = None
        return Admission(answer=refusal_answer(error, levels))
    except Exception as error:
        answer = error_answer(error, unavailable_retry_after)
        if answer is None:
            raise
        return Admission(answer=answer)
    return Admission(lease=lease, headers=admitted_headers(lease), context=context)


async def finish_async(admission: Admission, error: BaseException | None, status: int | None, refund_statuses: Any) -> None:
    """Exit the acquire: refund when the application raised (`error`) or answered a refunded status."""
    if error is not None:
        await admission.context.__aexit__(type(error), error, error.__traceback__)
    elif should_refund(status, refund_statuses):
        marker = ErrorResponse(status)  # type: ignore[arg-type]
        await admission.context.__aexit__(ErrorResponse, marker, None)
    else:
        await admission.context.__aexit__(None, None, None)


def finish_sync(admission: Admission, error: BaseException | None, status: int | None, refund_statuses: Any) -> None:
    if error is not None:
        admission.context.__exit__(type(error), error, error.__traceback__)
    elif should_refund(status, refund_statuses):
        admission.context.__exit__(ErrorResponse, ErrorResponse(status), None)  # type: ignore[arg-type]
    else:
        admission.context.__exit__(None, None, None)
