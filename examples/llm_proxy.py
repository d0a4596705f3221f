"""An LLM proxy in front of a (fake) model: per-API-key requests and tokens per minute, the token
estimate taken up front, the real count settled after the streamed answer ends.

Run it against `zae-limiter local` (it prints the variables to export):

    zae-limiter local &                 # then export ZAE_LIMITER_ENDPOINT_URL=... and the rest it prints
    uvicorn llm_proxy:app --app-dir examples --port 8000

or with no ZAE_LIMITER_ENDPOINT_URL set, and the app starts an embedded DynamoDB itself (one per
worker process: use `zae-limiter local` to share limits between workers). Then:

    curl -N -H 'x-api-key: key-1' -d '{"prompt": "hello there model", "max_tokens": 50}' \\
         localhost:8000/v1/chat/completions -i

Settings (environment): LLM_PROXY_RPM (default 5), LLM_PROXY_TPM (default 1000), ZAE_LIMITER_TABLE
(default rate_limits), AWS_DEFAULT_REGION (default us-east-1), ZAE_LIMITER_ON_UNAVAILABLE (block or
allow, default block).
"""

from __future__ import annotations

import asyncio
import json
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from zae_limiter import Limit, RateLimiter
from zae_limiter.asgi import RateLimitMiddleware, Rule, api_key
from zae_limiter.fastapi import RateLimit, add_exception_handlers

DEFAULT_MAX_TOKENS = 100


def estimated_cost(tpm: float) -> Any:
    """What is taken before the model runs: one request, and the most tokens the answer may use (at
    most the whole tpm bucket: asking for more than a limit's capacity could never be granted)."""

    async def cost(request: Request) -> dict[str, float]:
        try:
            body = json.loads(await request.body() or b"{}")
            max_tokens = int(body.get("max_tokens", DEFAULT_MAX_TOKENS))
        except (ValueError, TypeError, AttributeError):
            max_tokens = DEFAULT_MAX_TOKENS  # the route answers 400; the estimate only has to be bounded
        return {"rpm": 1, "tpm": max(1, min(max_tokens, tpm))}

    return cost


async def fake_model(prompt: str, max_tokens: int) -> AsyncIterator[str]:
    """Answers with the prompt's words echoed back, one token per word, at most max_tokens."""
    for word in prompt.split()[:max_tokens]:
        await asyncio.sleep(0.01)
        yield word


def limiter_from_environment() -> tuple[RateLimiter, Any]:
    """The limiter the settings describe, and the embedded DynamoDB it started (None when given one)."""
    endpoint_url = os.environ.get("ZAE_LIMITER_ENDPOINT_URL")
    table_name = os.environ.get("ZAE_LIMITER_TABLE", "rate_limits")
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    embedded = None
    if not endpoint_url:
        from zae_limiter.local import LocalDynamoDB, ensure_table

        embedded = LocalDynamoDB()
        endpoint_url = embedded.start()
        ensure_table(table_name, endpoint_url=endpoint_url, region=region)
    limiter = RateLimiter(
        table_name=table_name, region=region, endpoint_url=endpoint_url,
        on_unavailable=os.environ.get("ZAE_LIMITER_ON_UNAVAILABLE", "block"),
    )
    return limiter, embedded


def create_app(limiter: RateLimiter | None = None) -> FastAPI:
    embedded = None
    if limiter is None:
        limiter, embedded = limiter_from_environment()
    rpm = float(os.environ.get("LLM_PROXY_RPM", "5"))
    tpm = float(os.environ.get("LLM_PROXY_TPM", "1000"))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await limiter.close()
        if embedded is not None:
            embedded.stop()

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(RateLimitMiddleware, limiter=limiter, rules=[
        Rule(resource="chat", key=api_key("x-api-key"),
             limits=[Limit.per_minute("rpm", rpm), Limit.per_minute("tpm", tpm)],
             consume=estimated_cost(tpm), path="/v1/chat", methods=["POST"]),
    ])
    add_exception_handlers(app)
    # A per-route limit through the FastAPI dependency instead of the middleware.
    embeddings_limit = RateLimit(limiter, resource="embeddings", key=api_key("x-api-key"),
                                 limits=[Limit.per_minute("rpm", rpm)], consume={"rpm": 1})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        lease = request.state.rate_limit_lease
        try:
            body = json.loads(await request.body())
            prompt, max_tokens = str(body["prompt"]), int(body.get("max_tokens", DEFAULT_MAX_TOKENS))
        except (ValueError, TypeError, KeyError):
            return JSONResponse({"error": "the body must be JSON with a prompt"}, status_code=400)
        if body.get("fail"):
            raise RuntimeError("the model failed")  # the middleware refunds the lease, the client gets 500
        estimate = lease.consumed.get("tpm", 0)

        async def stream() -> AsyncIterator[str]:
            used = 0
            try:
                async for token in fake_model(prompt, max_tokens):
                    used += 1
                    yield token + "\n"
            finally:
                # After the last chunk (or the client leaving): settle the estimate with the real count.
                await lease.adjust(tpm=used - estimate)

        return StreamingResponse(stream(), media_type="text/plain")

    @app.post("/v1/embeddings")
    async def embeddings(request: Request, lease: Any = Depends(embeddings_limit)) -> dict[str, Any]:
        body = json.loads(await request.body() or b"{}")
        if body.get("fail"):
            raise RuntimeError("the embedding model failed")  # the dependency refunds the lease
        return {"embedding": [float(len(word)) for word in str(body.get("input", "")).split()]}

    return app


_default_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    # `uvicorn llm_proxy:app` builds the app on first access, so importing the module starts nothing.
    global _default_app
    if name == "app":
        if _default_app is None:
            _default_app = create_app()
        return _default_app
    raise AttributeError(name)
