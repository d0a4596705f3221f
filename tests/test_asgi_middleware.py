"""RateLimitMiddleware's options under a real uvicorn: refunds by status and on errors (and turned
off), the request body read by a consume function and still seen by the app, regex paths and
methods, stored limits, client addresses behind a trusted proxy, and a plain ASGI app in a process
where Starlette cannot be imported."""

from __future__ import annotations

import time
import uuid
from typing import Iterator

import httpx
import pytest

from zae_limiter import Limit, SyncRateLimiter
from zae_limiter.local import ensure_table

from web_checks import counters, fresh, problem, structured_list, wait_range
from web_servers import uvicorn

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def table(endpoint_url: str) -> str:
    name = f"zl_web_{uuid.uuid4().hex[:8]}"
    ensure_table(name, endpoint_url=endpoint_url)
    return name


@pytest.fixture(scope="module")
def env(endpoint_url: str, table: str) -> dict[str, str]:
    return {"ZAE_LIMITER_ENDPOINT_URL": endpoint_url, "ZAE_LIMITER_TABLE": table}


@pytest.fixture(scope="module")
def app(env: dict[str, str]) -> Iterator[httpx.Client]:
    with uvicorn("web_apps:starlette_app", env) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def app_without_refunds(env: dict[str, str]) -> Iterator[httpx.Client]:
    with uvicorn("web_apps:starlette_app_without_refunds", env) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def test_the_smallest_use_works_as_written(env: dict[str, str]) -> None:
    key = fresh()
    with uvicorn("web_apps:design_smallest", env) as url, httpx.Client(base_url=url, timeout=60) as client:
        started = time.monotonic()
        answers = [client.get("/chat", headers={"x-api-key": key}) for _ in range(6)]
        elapsed = time.monotonic() - started
        without_key = client.get("/chat")  # the lambda's KeyError: no key, answered 400
        elsewhere = client.get("/healthz")
    assert [answer.status_code for answer in answers] == [200] * 5 + [429]
    assert int(answers[5].headers["retry-after"]) in wait_range(12, 0, elapsed)
    assert [structured_list(a.headers["ratelimit"])["rpm"]["r"] for a in answers] == [4, 3, 2, 1, 0, 0]
    assert without_key.status_code == 400 and problem(without_key)["error"] == "rate_limit_key_invalid"
    assert elsewhere.status_code == 200 and "ratelimit" not in elsewhere.headers


def test_server_errors_are_refunded_other_answers_are_not(app: httpx.Client, endpoint_url: str, table: str) -> None:
    for code, kept in ((200, 1.0), (404, 1.0), (500, 0.0), (503, 0.0)):
        key = fresh()
        response = app.get(f"/status/{code}", headers={"x-api-key": key})
        assert response.status_code == code
        assert structured_list(response.headers["ratelimit"])["rpm"]["r"] == 99  # admitted, with its headers
        assert counters(endpoint_url, table, key, "status") == {"rpm": kept}, code


def test_a_raising_handler_is_refunded(app: httpx.Client, endpoint_url: str, table: str) -> None:
    key = fresh()
    assert app.get("/raise", headers={"x-api-key": key}).status_code == 500
    assert counters(endpoint_url, table, key, "raise") == {"rpm": 0.0}


def test_refunds_can_be_turned_off(app_without_refunds: httpx.Client, endpoint_url: str, table: str) -> None:
    key = fresh()
    assert app_without_refunds.get("/status/503", headers={"x-api-key": key}).status_code == 503
    assert app_without_refunds.get("/raise", headers={"x-api-key": key}).status_code == 500
    assert counters(endpoint_url, table, key, "status") == {"rpm": 1.0}
    assert counters(endpoint_url, table, key, "raise") == {"rpm": 1.0}


def test_a_consume_function_reads_the_body_and_the_app_reads_it_again(app: httpx.Client, endpoint_url: str,
                                                                       table: str) -> None:
    key = fresh()
    sent = '{"cost": 3, "text": "' + "x" * 100_000 + '"}'  # several receive() messages
    response = app.post("/echo", headers={"x-api-key": key, "content-type": "application/json"}, content=sent)
    assert response.status_code == 200
    assert response.json() == {"body": sent, "consumed": {"rpm": 3.0}}
    assert counters(endpoint_url, table, key, "echo") == {"rpm": 3.0}


def test_regex_paths_and_methods_choose_the_rule(app: httpx.Client) -> None:
    key = fresh()
    limited = app.post("/v1/items", headers={"x-api-key": key})
    other_method = app.get("/v1/items", headers={"x-api-key": key})
    past_the_end = app.post("/v1/items/x", headers={"x-api-key": key})  # the pattern ends with $
    unlimited = app.get("/free", headers={"x-api-key": key})
    assert limited.json() == {"lease": {"entity_id": key, "resource": "items", "consumed": {"rpm": 1.0}}}
    assert "ratelimit" in limited.headers
    for response in (other_method, past_the_end, unlimited):
        assert response.status_code == 200 and response.json() == {"lease": None}
        assert "ratelimit" not in response.headers and "ratelimit-policy" not in response.headers


def test_stored_limits_set_the_policy_and_the_refusal(app: httpx.Client, endpoint_url: str, table: str) -> None:
    key = fresh()
    with SyncRateLimiter(table_name=table, region="us-east-1", endpoint_url=endpoint_url) as limiter:
        limiter.set_limits(key, [Limit.per_minute("rpm", 1)], resource="stored")
    started = time.monotonic()
    admitted = app.get("/stored", headers={"x-api-key": key})
    refused = app.get("/stored", headers={"x-api-key": key})
    elapsed = time.monotonic() - started
    assert admitted.status_code == 200
    assert admitted.headers["ratelimit-policy"] == '"rpm";q=1;w=60'
    assert refused.status_code == 429
    assert refused.headers["ratelimit-policy"] == '"rpm";q=1;w=60'
    assert int(refused.headers["retry-after"]) in wait_range(60, 0, elapsed)
    assert structured_list(refused.headers["ratelimit"])["rpm"] == {"r": 0, "t": int(refused.headers["retry-after"])}
    assert problem(refused)["violated-policies"] == ["rpm"]


def test_client_addresses_behind_a_trusted_proxy(app: httpx.Client) -> None:
    # The test connects from 127.0.0.1, the app's trusted proxy: X-Forwarded-For is believed, right to
    # left, up to the first address that is not a trusted proxy.
    def key_of(headers: dict[str, str]) -> str:
        return app.get("/ip", headers=headers).json()["lease"]["entity_id"]

    assert key_of({}) == "127.0.0.1"
    assert key_of({"x-forwarded-for": "203.0.113.7"}) == "203.0.113.7"
    assert key_of({"x-forwarded-for": "198.51.100.1, 203.0.113.9, 127.0.0.1"}) == "203.0.113.9"


def test_a_plain_asgi_app_without_starlette(env: dict[str, str], endpoint_url: str, table: str) -> None:
    key = fresh()
    with uvicorn("web_plain_asgi:app", env) as url, httpx.Client(base_url=url, timeout=60) as client:
        response = client.post("/limited", headers={"x-api-key": key}, content=b'{"cost": 2}')
        untouched = client.get("/elsewhere")
    assert response.status_code == 200
    assert response.json() == {"body": '{"cost": 2}', "request_type": "ASGIRequestView", "consumed": {"rpm": 2.0},
                               "starlette_importable": False}
    assert response.headers["ratelimit-policy"] == '"rpm";q=5;w=60'
    assert structured_list(response.headers["ratelimit"])["rpm"]["r"] == 3
    assert untouched.json()["consumed"] is None and "ratelimit" not in untouched.headers
    assert counters(endpoint_url, table, key, "plain") == {"rpm": 2.0}
