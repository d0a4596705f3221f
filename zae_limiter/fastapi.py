"""A FastAPI dependency for per-route limits.

    from zae_limiter.fastapi import RateLimit, add_exception_handlers

    embeddings_limit = RateLimit(limiter, resource="embeddings", key=api_key("x-api-key"),
                                 limits=[Limit.per_minute("rpm", 60)], consume={"rpm": 1})

    @app.post("/v1/embeddings")
    async def embeddings(lease: Lease = Depends(embeddings_limit)): ...

    add_exception_handlers(app)   # refusals as application/problem+json (else FastAPI's {"detail": ...})

The dependency yields the lease (also at `request.state.rate_limit_lease`), sets the RateLimit fields on
FastAPI's response, and exits after the response is sent (FastAPI's default dependency scope), so a
streamed body can adjust the lease after its last chunk. The lease is refunded when the route raises
anything but an HTTPException below 500 (those are answers, as the middleware sees them). FastAPI
merges dependency headers only into responses it builds: a route returning its own Response
(a StreamingResponse included) passes them on with `headers=embeddings_limit.headers(request)`. Refusals raise `RateLimitRefused`, an
HTTPException with the 429/403/503/400 status and headers of zae_limiter.asgi.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Mapping, Sequence

try:
    from fastapi import HTTPException, Request, Response
except ImportError:  # pragma: no cover - exercised in a subprocess
    raise ImportError("zae_limiter.fastapi needs FastAPI: pip install fastapi") from None

from .http_headers import HttpAnswer
from .core.limits import Limit
from .web_admission import DEFAULT_STATE_KEY, admit_async, finish_async
from .web_rules import ConsumeFunction, KeyFunction, Rule, api_key, client_address, user

__all__ = ["RateLimit", "RateLimitRefused", "add_exception_handlers", "api_key", "client_address", "user"]

_HEADERS_STATE = "rate_limit_headers"


class RateLimitRefused(HTTPException):
    """A request the limiter answered (429 refused, 403 disabled, 503 unavailable, 400 no key)."""

    def __init__(self, answer: HttpAnswer) -> None:
        self.answer = answer
        detail = json.loads(answer.body) if answer.body else None
        headers = {name: value for name, value in answer.headers if name not in ("content-type", "content-length")}
        super().__init__(status_code=answer.status, detail=detail, headers=headers)


async def problem_response(request: Request, error: RateLimitRefused) -> Response:
    answer = error.answer
    return Response(content=answer.body, status_code=answer.status, headers=dict(answer.headers))


def add_exception_handlers(app: Any) -> None:
    """Answer refusals with the problem+json body itself (RFC 9457), as the middleware does."""
    app.add_exception_handler(RateLimitRefused, problem_response)


class RateLimit:
    """`Depends(RateLimit(limiter, resource=..., key=..., limits=..., consume=...))`."""

    def __init__(
        self,
        limiter: Any,
        resource: str,
        key: KeyFunction,
        limits: Sequence[Limit] | None = None,
        consume: Mapping[str, float] | ConsumeFunction | None = None,
        *,
        refund_on_error: bool = True,
        unavailable_retry_after: int = 1,
        state_key: str = DEFAULT_STATE_KEY,
    ) -> None:
        self.limiter = limiter
        self.rule = Rule(resource=resource, key=key, limits=limits, consume=consume)
        self.refund_on_error = bool(refund_on_error)
        self.unavailable_retry_after = unavailable_retry_after
        self.state_key = state_key

    def headers(self, request: Request) -> dict[str, str]:
        """The RateLimit fields of this request's admission, for a route returning its own Response."""
        return dict(getattr(request.state, _HEADERS_STATE, ()))

    async def __call__(self, request: Request, response: Response) -> AsyncIterator[Any]:
        admission = await admit_async(self.limiter, self.rule, request, self.unavailable_retry_after)
        if admission.answer is not None:
            raise RateLimitRefused(admission.answer)
        setattr(request.state, self.state_key, admission.lease)
        setattr(request.state, _HEADERS_STATE, admission.headers)
        for name, value in admission.headers:
            response.headers.append(name, value)
        try:
            yield admission.lease
        except HTTPException as error:
            refund = self.refund_on_error and error.status_code >= 500
            await finish_async(admission, error if refund else None, None, ())
            raise
        except BaseException as error:
            await finish_async(admission, error if self.refund_on_error else None, None, ())
            raise
        await finish_async(admission, None, None, ())
