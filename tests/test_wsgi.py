"""The WSGI middleware on a SyncRateLimiter, under the standard library's WSGI server in a thread,
driven by httpx: the same answers and headers as the ASGI middleware, the lease in the environ,
adjust after a streamed body, refunds."""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Iterator

import httpx
import pytest

from zae_limiter import Limit, SyncRateLimiter
from zae_limiter.local import free_port
from zae_limiter.wsgi import ENVIRON_KEY, RateLimitMiddleware, Rule, api_key

from web_checks import counters, fresh, problem, structured_list, wait_range
from web_servers import wsgi_server

pytestmark = pytest.mark.server

LIMITS = [Limit.per_minute("rpm", 5), Limit.per_minute("tpm", 1000)]
POLICY = '"rpm";q=5;w=60, "tpm";q=1000;w=60'


def estimate(request: Any) -> dict[str, float]:
    return {"rpm": 1, "tpm": float(json.loads(request.body() or b"{}").get("max_tokens", 10))}


def app(environ: dict, start_response: Callable[..., Any]) -> Any:
    path = environ["PATH_INFO"]
    if path == "/healthz":
        start_response("200 OK", [("content-type", "text/plain")])
        return [b"ok"]
    if path.startswith("/status/"):
        code = int(path.rsplit("/", 1)[1])
        start_response(f"{code} Status", [("content-type", "text/plain")])
        return [b"status"]
    if path == "/raise":
        raise RuntimeError("the app failed")
    lease = environ[ENVIRON_KEY]
    body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))  # read again
    estimated = lease.consumed.get("tpm", 0)

    def stream() -> Iterator[bytes]:
        used = 0
        try:
            for word in body["prompt"].split():
                if word == "boom":
                    raise RuntimeError("the model failed mid-answer")
                used += 1
                yield word.encode() + b"\n"
        finally:
            lease.adjust(tpm=used - estimated)  # after the last chunk (or the failure)

    start_response("200 OK", [("content-type", "text/plain")])
    return stream()


def rules() -> list[Rule]:
    key = api_key("x-api-key")
    return [
        Rule(resource="chat", key=key, limits=LIMITS, consume=estimate, path="/chat"),
        Rule(resource="status", key=key, limits=LIMITS, consume={"rpm": 1}, path="/status"),
        Rule(resource="raise", key=key, limits=LIMITS, consume={"rpm": 1}, path="/raise"),
    ]


def sync_limiter(endpoint_url: str, table_name: str, cls: type = SyncRateLimiter, **options: Any) -> SyncRateLimiter:
    return cls(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url,
               **options)


@pytest.fixture
def client(endpoint_url: str, table_name: str) -> Iterator[httpx.Client]:
    limiter = sync_limiter(endpoint_url, table_name)
    try:
        with wsgi_server(RateLimitMiddleware(app, limiter=limiter, rules=rules())) as url, \
                httpx.Client(base_url=url, timeout=60) as http:
            yield http
    finally:
        limiter.close()


def post_chat(client: httpx.Client, key: str, prompt: str = "hi", max_tokens: int = 10) -> httpx.Response:
    return client.post("/chat", headers={"x-api-key": key}, json={"prompt": prompt, "max_tokens": max_tokens})


def test_admits_exactly_five_then_refuses_with_retry_after_12(client: httpx.Client) -> None:
    key = fresh()
    started = time.monotonic()
    answers = [post_chat(client, key) for _ in range(5)]
    refused = post_chat(client, key)
    answered = time.monotonic()
    assert [answer.status_code for answer in answers] == [200] * 5
    assert [structured_list(a.headers["ratelimit"])["rpm"]["r"] for a in answers] == [4, 3, 2, 1, 0]
    assert all(a.headers["ratelimit-policy"] == POLICY for a in answers)
    assert answers[0].text == "hi\n"
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) in wait_range(12, 0, answered - started)
    assert refused.headers["ratelimit-policy"] == POLICY
    body = problem(refused)
    assert body["status"] == 429 and body["violated-policies"] == ["rpm"]


def test_streamed_body_adjusts_and_errors_refund(client: httpx.Client, endpoint_url: str, table_name: str) -> None:
    key, failing, raising = fresh(), fresh(), fresh()
    streamed = post_chat(client, key, "one two three four", max_tokens=50)
    assert streamed.status_code == 200 and streamed.text.split() == ["one", "two", "three", "four"]
    assert counters(endpoint_url, table_name, key, "chat") == {"rpm": 1.0, "tpm": 4.0}
    try:  # the body breaks off after its headers were sent: wsgiref just closes the connection
        broken: str | None = post_chat(client, failing, "one two boom three", max_tokens=50).text
    except httpx.HTTPError:
        broken = None
    assert broken in (None, "one\ntwo\n")
    assert counters(endpoint_url, table_name, failing, "chat") == {"rpm": 0.0, "tpm": 0.0}
    assert client.get("/raise", headers={"x-api-key": raising}).status_code == 500
    assert counters(endpoint_url, table_name, raising, "raise") == {"rpm": 0.0}


def test_server_errors_are_refunded_and_unmatched_requests_untouched(client: httpx.Client, endpoint_url: str,
                                                                     table_name: str) -> None:
    for code, kept in ((404, 1.0), (503, 0.0)):
        key = fresh()
        response = client.get(f"/status/{code}", headers={"x-api-key": key})
        assert response.status_code == code and "ratelimit" in response.headers
        assert counters(endpoint_url, table_name, key, "status") == {"rpm": kept}
    health = client.get("/healthz")
    assert health.text == "ok" and "ratelimit" not in health.headers
    missing_key = client.get("/status/200")
    assert missing_key.status_code == 400 and problem(missing_key)["error"] == "rate_limit_key_invalid"


def test_disabled_is_403(endpoint_url: str, table_name: str) -> None:
    limiter = sync_limiter(endpoint_url, table_name)
    limiter.disable(entity_id="disabled-9")
    try:
        with wsgi_server(RateLimitMiddleware(app, limiter=limiter, rules=rules())) as url:
            response = httpx.get(url + "/status/200", headers={"x-api-key": "disabled-9"}, timeout=60)
    finally:
        limiter.close()
    assert response.status_code == 403 and "retry-after" not in response.headers
    assert problem(response)["error"] == "resource_disabled"


@pytest.mark.parametrize("policy", ["block", "allow"])
def test_unreachable_dynamodb(policy: str) -> None:
    limiter = sync_limiter(f"http://127.0.0.1:{free_port()}", "rate_limits", on_unavailable=policy)
    try:
        with wsgi_server(RateLimitMiddleware(app, limiter=limiter, rules=rules())) as url:
            response = httpx.post(url + "/chat", headers={"x-api-key": fresh()}, json={"prompt": "a b"}, timeout=120)
    finally:
        limiter.close()
    assert "ratelimit" not in response.headers
    if policy == "block":
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
    else:
        assert response.status_code == 200 and response.headers["zae-limiter-unchecked"] == "?1"
        assert response.text.split() == ["a", "b"]
