"""The FastAPI dependency under a real uvicorn: HTTPExceptions below 500 are answers (kept), 5xx ones
refunded; a route returning its own Response copies the headers; a streamed body adjusts before the
dependency exits; without add_exception_handlers a refusal is FastAPI's JSON with the same headers."""

from __future__ import annotations

import time
import uuid
from typing import Iterator

import httpx
import pytest

from zae_limiter.local import ensure_table

from web_checks import counters, fresh, structured_list, wait_range
from web_servers import uvicorn

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def table(endpoint_url: str) -> str:
    name = f"zl_web_{uuid.uuid4().hex[:8]}"
    ensure_table(name, endpoint_url=endpoint_url)
    return name


@pytest.fixture(scope="module")
def client(endpoint_url: str, table: str) -> Iterator[httpx.Client]:
    env = {"ZAE_LIMITER_ENDPOINT_URL": endpoint_url, "ZAE_LIMITER_TABLE": table}
    with uvicorn("web_fastapi_app:app", env) as url, httpx.Client(base_url=url, timeout=60) as http:
        yield http


def test_http_exceptions_below_500_are_kept_others_refunded(client: httpx.Client, endpoint_url: str,
                                                            table: str) -> None:
    for code, kept in ((404, 1.0), (409, 1.0), (500, 0.0), (503, 0.0)):
        key = fresh()
        response = client.get(f"/http/{code}", headers={"x-api-key": key})
        assert response.status_code == code and response.json() == {"detail": "answered by the route"}
        assert counters(endpoint_url, table, key, "dep") == {"rpm": kept}, code


def test_an_own_response_copies_the_headers(client: httpx.Client) -> None:
    started = time.monotonic()
    response = client.get("/own-response", headers={"x-api-key": fresh()})
    elapsed = time.monotonic() - started
    assert response.json() == {"own": True}
    assert response.headers["ratelimit-policy"] == '"rpm";q=2;w=60'
    limit = structured_list(response.headers["ratelimit"])["rpm"]
    assert limit["r"] == 1 and limit["t"] in wait_range(30, 0, elapsed)  # the taken token is back in 30 s


def test_a_streamed_body_adjusts_before_the_dependency_exits(client: httpx.Client, endpoint_url: str,
                                                             table: str) -> None:
    key = fresh()
    response = client.get("/stream", headers={"x-api-key": key})
    assert response.text == "abc" and "ratelimit" in response.headers
    assert counters(endpoint_url, table, key, "dep") == {"rpm": 1.5}


def test_a_refusal_without_the_handlers_is_fastapi_json_with_the_headers(client: httpx.Client) -> None:
    key = fresh()
    started = time.monotonic()
    assert [client.get("/data", headers={"x-api-key": key}).status_code for _ in range(2)] == [200, 200]
    refused = client.get("/data", headers={"x-api-key": key})
    elapsed = time.monotonic() - started
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/json"
    assert int(refused.headers["retry-after"]) in wait_range(30, 0, elapsed)  # the first token back
    assert refused.headers["ratelimit-policy"] == '"rpm";q=2;w=60'
    problem = refused.json()["detail"]
    assert problem["status"] == 429 and problem["violated-policies"] == ["rpm"]
