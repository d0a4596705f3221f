"""A FastAPI app exercising the dependency (`uvicorn web_fastapi_app:app --factory`). No
`from __future__ import annotations` here: FastAPI reads the route signatures' annotations."""

from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse

from zae_limiter import Limit
from zae_limiter.fastapi import RateLimit, api_key

from web_apps import make_limiter

def app() -> Any:
    limiter = make_limiter()
    app = FastAPI()  # no add_exception_handlers: refusals come as FastAPI's {"detail": ...}
    limited = RateLimit(limiter, resource="dep", key=api_key("x-api-key"), limits=[Limit.per_minute("rpm", 2)],
                        consume={"rpm": 1})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/data")
    async def data(lease: Any = Depends(limited)) -> dict[str, Any]:
        return {"consumed": lease.consumed}

    @app.get("/http/{code}")
    async def http_error(code: int, lease: Any = Depends(limited)) -> None:
        raise HTTPException(status_code=code, detail="answered by the route")

    @app.get("/own-response")
    async def own_response(request: Request, lease: Any = Depends(limited)) -> Any:
        return JSONResponse({"own": True}, headers=limited.headers(request))

    @app.get("/stream")
    async def stream(request: Request, lease: Any = Depends(limited)) -> Any:
        async def body() -> Any:
            try:
                for word in ("a", "b", "c"):
                    yield word
            finally:
                await lease.adjust(rpm=0.5)  # after the last chunk: the dependency has not exited yet

        # FastAPI merges dependency headers only into responses it builds: copy them onto this one.
        return StreamingResponse(body(), media_type="text/plain", headers=limited.headers(request))

    return app
