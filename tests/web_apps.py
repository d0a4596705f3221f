"""App factories the web tests run under uvicorn (`uvicorn web_apps:NAME --factory`). Settings come
from the environment the test gives the server: ZAE_LIMITER_ENDPOINT_URL, ZAE_LIMITER_TABLE,
ZAE_LIMITER_ON_UNAVAILABLE."""

from __future__ import annotations

import json
import os
import re
from typing import Any


from zae_limiter import Limit, RateLimiter
from zae_limiter.asgi import RateLimitMiddleware, Rule, api_key, client_address

RPM_100 = Limit.per_minute("rpm", 100)


def make_limiter(cls: type = RateLimiter) -> Any:
    return cls(
        table_name=os.environ["ZAE_LIMITER_TABLE"],
        region="us-east-1",
        endpoint_url=os.environ["ZAE_LIMITER_ENDPOINT_URL"],
        on_unavailable=os.environ.get("ZAE_LIMITER_ON_UNAVAILABLE", "block"),
    )


# -- the example --------------------------------------------------------------------------------------
def proxy() -> Any:
    """The example app, as `uvicorn llm_proxy:app` builds it, on the test's table."""
    import llm_proxy  # here: web_plain_asgi imports this module where Starlette (so FastAPI) cannot load

    return llm_proxy.create_app(make_limiter())


def proxy_with_worker_pid() -> Any:
    """The example app, its responses saying which worker process served them."""
    inner = proxy()
    pid = str(os.getpid()).encode()

    async def app(scope: dict, receive: Any, send: Any) -> None:
        async def send_with_pid(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), (b"x-worker-pid", pid)]}
            await send(message)

        await inner(scope, receive, send_with_pid if scope["type"] == "http" else send)

    return app


def design_smallest() -> Any:
    """DESIGN section 17's smallest use, exactly as written there, on a Starlette app."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def answer(request: Any) -> Any:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/healthz", answer), Route("/chat", answer)])
    limiter = make_limiter()
    app.add_middleware(RateLimitMiddleware, limiter=limiter, rules=[
        Rule(resource="chat", key=lambda request: request.headers["x-api-key"],
             limits=[Limit.per_minute("rpm", 5)], consume={"rpm": 1}, path="/chat"),
    ])
    return app


# -- a Starlette app exercising the middleware's options ----------------------------------------------
async def _cost_from_body(request: Any) -> dict[str, float]:
    return {"rpm": float(json.loads(await request.body())["cost"])}


def _rules() -> list[Rule]:
    key = api_key("x-api-key")
    return [
        Rule(resource="status", key=key, limits=[RPM_100], consume={"rpm": 1}, path="/status"),
        Rule(resource="raise", key=key, limits=[RPM_100], consume={"rpm": 1}, path="/raise"),
        Rule(resource="echo", key=key, limits=[RPM_100], consume=_cost_from_body, path="/echo"),
        Rule(resource="items", key=key, limits=[RPM_100], consume={"rpm": 1},
             path=re.compile(r"^/v\d+/items$"), methods=["post"]),
        Rule(resource="stored", key=key, limits=None, consume={"rpm": 1}, path="/stored"),
        Rule(resource="ip", key=client_address(trusted_proxies=["127.0.0.1"]), limits=[RPM_100],
             consume={"rpm": 1}, path="/ip"),
    ]


def _starlette(**options: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def status(request: Request) -> Response:
        return PlainTextResponse("status", status_code=int(request.path_params["code"]))

    async def raises(request: Request) -> Response:
        raise RuntimeError("the handler failed")

    async def echo(request: Request) -> Response:
        lease = request.state.rate_limit_lease
        return JSONResponse({"body": (await request.body()).decode(), "consumed": lease.consumed})

    async def lease_view(request: Request) -> Response:
        lease = getattr(request.state, "rate_limit_lease", None)
        if lease is None:
            return JSONResponse({"lease": None})
        return JSONResponse({"lease": {"entity_id": lease.entity_id, "resource": lease.resource, "consumed": lease.consumed}})

    app = Starlette(routes=[
        Route("/healthz", healthz),
        Route("/status/{code:int}", status),
        Route("/raise", raises),
        Route("/echo", echo, methods=["POST"]),
        Route("/v1/items", lease_view, methods=["GET", "POST"]),
        Route("/v1/items/x", lease_view, methods=["POST"]),
        Route("/stored", lease_view),
        Route("/ip", lease_view),
        Route("/free", lease_view),
    ])
    app.add_middleware(RateLimitMiddleware, limiter=make_limiter(), rules=_rules(), **options)
    return app


def starlette_app() -> Any:
    return _starlette()


def starlette_app_without_refunds() -> Any:
    return _starlette(refund_on_error=False, refund_statuses=())

