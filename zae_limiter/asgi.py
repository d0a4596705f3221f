"""`RateLimitMiddleware`: rate limiting in front of any ASGI app (Starlette, FastAPI, Litestar, plain ASGI).

    from zae_limiter.asgi import RateLimitMiddleware, Rule
    app.add_middleware(RateLimitMiddleware, limiter=limiter, rules=[
        Rule(resource="chat", key=lambda request: request.headers["x-api-key"],
             limits=[Limit.per_minute("rpm", 5)], consume={"rpm": 1}, path="/chat"),
    ])

A request matching no rule (or not HTTP: websockets, lifespan) passes untouched; otherwise the first
matching rule decides (see web_rules.Rule). Admitted requests reach the app with the lease at
`request.state.rate_limit_lease` (`scope["state"]`) and get the RateLimit fields on their response.
Refused ones get 429, Retry-After, the RateLimit fields and a problem+json body; a disabled entity or
resource 403; DynamoDB unreachable 503 with Retry-After under `on_unavailable="block"`, and under
"allow" the request passes with `zae-limiter-unchecked: ?1` on its response.

Adjusting after the response is known: the app calls `await lease.adjust(...)` any time before the
response ends, streaming included: the middleware waits for the app, and Starlette's StreamingResponse
runs its body iterator inside the app, so code after the iterator's last `yield` (best in a `finally`,
which also runs when the client disconnects mid-stream) runs before the lease is settled.

Refunds: the lease is given back whole when the app raises (`refund_on_error=True`) or answers a status
in `refund_statuses` (default 500-599).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Sequence

from .core.errors import ValidationError
from .http_headers import HttpAnswer
from .web_admission import DEFAULT_STATE_KEY, REFUND_STATUSES, admit_async, check_options, finish_async
from .web_rules import ASGIRequestView, Rule, api_key, check_rules, client_address, first_match, user

__all__ = ["RateLimitMiddleware", "Rule", "api_key", "client_address", "user", "send_answer"]

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

_starlette_request: Any = None


def make_request(scope: Scope, receive: Receive) -> Any:
    """Starlette's `Request` when Starlette is installed (as in any Starlette, FastAPI or Litestar app),
    else a view with the same attributes a rule reads."""
    global _starlette_request
    if _starlette_request is None:
        try:
            from starlette.requests import Request
        except ImportError:
            Request = False
        _starlette_request = Request
    if _starlette_request is False:
        return ASGIRequestView(scope, receive)
    return _starlette_request(scope, receive)


class _ReplayedBody:
    """Lets a key or consume function read the request body (e.g. `max_tokens` from JSON) and the app
    read it again: the messages taken are handed to the app first."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._taken: list[dict] = []

    async def record(self) -> dict:
        message = await self._receive()
        self._taken.append(message)
        return message

    async def replay(self) -> dict:
        if self._taken:
            return self._taken.pop(0)
        return await self._receive()


def _encode(headers: Sequence[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]


async def send_answer(send: Send, answer: HttpAnswer) -> None:
    await send({"type": "http.response.start", "status": answer.status, "headers": _encode(answer.headers)})
    await send({"type": "http.response.body", "body": answer.body, "more_body": False})


class RateLimitMiddleware:
    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        limiter: Any,
        rules: Sequence[Rule],
        *,
        refund_on_error: bool = True,
        refund_statuses: Any = REFUND_STATUSES,
        unavailable_retry_after: int = 1,
        state_key: str = DEFAULT_STATE_KEY,
    ) -> None:
        if limiter is None or not hasattr(limiter, "acquire"):
            raise ValidationError("limiter", "must be a zae_limiter.RateLimiter")
        self.app = app
        self.limiter = limiter
        self.rules = check_rules(rules)
        self.refund_on_error = bool(refund_on_error)
        self.refund_statuses, self.unavailable_retry_after = check_options(refund_statuses, unavailable_retry_after)
        self.state_key = state_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rule = first_match(self.rules, scope.get("method", ""), scope.get("path", "")) if scope["type"] == "http" else None
        if rule is None:
            await self.app(scope, receive, send)
            return
        body = _ReplayedBody(receive)
        admission = await admit_async(self.limiter, rule, make_request(scope, body.record), self.unavailable_retry_after)
        if admission.answer is not None:
            await send_answer(send, admission.answer)
            return
        scope.setdefault("state", {})[self.state_key] = admission.lease
        extra = _encode(admission.headers)
        status: list[int] = []

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        try:
            await self.app(scope, body.replay, send_with_headers)
        except BaseException as error:
            await finish_async(admission, error if self.refund_on_error else None, None, ())
            raise
        await finish_async(admission, None, status[0] if status else None, self.refund_statuses)
