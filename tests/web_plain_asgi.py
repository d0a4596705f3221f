"""A plain ASGI app (no framework) behind the middleware, in a process where Starlette cannot be
imported: `uvicorn web_plain_asgi:app --factory`. Rules then receive the middleware's own request view."""

from __future__ import annotations

import json
import sys
from typing import Any

sys.modules["starlette"] = None  # type: ignore[assignment]  # importing it now raises ImportError

from zae_limiter import Limit  # noqa: E402
from zae_limiter.asgi import RateLimitMiddleware, Rule  # noqa: E402

from web_apps import make_limiter  # noqa: E402


def _key(request: Any) -> str:
    request.state.request_type = type(request).__name__
    return request.headers["x-api-key"]


async def _cost(request: Any) -> dict[str, float]:
    return {"rpm": float(json.loads(await request.body())["cost"])}


async def _inner(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    state = scope.get("state", {})
    lease = state.get("rate_limit_lease")
    answer = json.dumps({
        "body": body.decode(),
        "request_type": state.get("request_type"),
        "consumed": lease.consumed if lease is not None else None,
        "starlette_importable": "starlette" in sys.modules and sys.modules["starlette"] is not None,
    }).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": answer})


def app() -> Any:
    return RateLimitMiddleware(_inner, limiter=make_limiter(), rules=[
        Rule(resource="plain", key=_key, limits=[Limit.per_minute("rpm", 5)], consume=_cost, path="/limited"),
    ])
