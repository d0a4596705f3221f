"""The example LLM proxy (examples/llm_proxy.py) under a real uvicorn, in a subprocess on 127.0.0.1,
against the embedded DynamoDB, driven by httpx: the answers a client sees, the tokens the limiter
records, the FastAPI dependency, and several workers on one limit."""

from __future__ import annotations

import asyncio
import math
import sys
import time
import uuid
from typing import Iterator

import httpx
import pytest

from zae_limiter import Limit, SyncRateLimiter
from zae_limiter.local import HOST, ensure_table, free_port

from web_checks import counters, fresh, problem, structured_list, wait_range
from web_servers import EXAMPLES, serve, uvicorn

pytestmark = pytest.mark.server

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
POLICY = '"rpm";q=5;w=60, "tpm";q=1000;w=60'  # per_minute("rpm", 5) and per_minute("tpm", 1000)
QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"


@pytest.fixture(scope="module")
def table(endpoint_url: str) -> str:
    name = f"zl_web_{uuid.uuid4().hex[:8]}"
    ensure_table(name, endpoint_url=endpoint_url)
    return name


def settings(endpoint_url: str, table: str, **extra: str) -> dict[str, str]:
    return {"ZAE_LIMITER_ENDPOINT_URL": endpoint_url, "ZAE_LIMITER_TABLE": table, **extra}


@pytest.fixture(scope="module")
def proxy(endpoint_url: str, table: str) -> Iterator[str]:
    with uvicorn("web_apps:proxy", settings(endpoint_url, table)) as url:
        yield url


def chat(client: httpx.Client, key: str | None, prompt: str = "hi", max_tokens: int = 10, **extra: object) -> httpx.Response:
    headers = {"x-api-key": key} if key is not None else {}
    return client.post(CHAT, headers=headers, json={"prompt": prompt, "max_tokens": max_tokens, **extra})


def test_admits_exactly_five_then_refuses_with_retry_after_12(proxy: str) -> None:
    key = fresh()
    with httpx.Client(base_url=proxy, timeout=60) as client:
        started = time.monotonic()  # the first take happens after this...
        first_answered = None  # ...and before this
        for index in range(5):
            response = chat(client, key)
            answered = time.monotonic()
            first_answered = first_answered or answered
            assert response.status_code == 200, response.text
            assert response.headers["ratelimit-policy"] == POLICY
            limits = structured_list(response.headers["ratelimit"])
            # rpm: 5 - (index + 1) whole tokens left; its next token comes 12 s after the first take.
            assert limits["rpm"]["r"] == 4 - index
            assert limits["rpm"]["t"] in wait_range(12, 0 if index == 0 else answered - first_answered, answered - started)
            # tpm: the estimate (10) is taken at admission, the earlier answers used 1 token each.
            assert 990 - index <= limits["tpm"]["r"] <= 990
            assert limits["tpm"]["t"] == 1  # 1000/min: a whole token every 60 ms
            assert "zae-limiter-unchecked" not in response.headers
        sent = time.monotonic()
        refused = chat(client, key)
        answered = time.monotonic()
    assert refused.status_code == 429
    # The 6th fits when the first take's token is back: 12 s after it (one emission interval).
    allowed = wait_range(12, sent - first_answered, answered - started)
    assert int(refused.headers["retry-after"]) in allowed
    assert 12 in allowed  # the run was fast enough for the check above to mean "12"
    assert refused.headers["ratelimit-policy"] == POLICY
    limits = structured_list(refused.headers["ratelimit"])
    assert limits["rpm"] == {"r": 0, "t": int(refused.headers["retry-after"])}
    body = problem(refused)
    assert body["type"] == QUOTA_EXCEEDED and body["status"] == 429
    assert body["title"] == "Request cannot be satisfied as assigned quota has been exceeded"
    assert body["violated-policies"] == ["rpm"]
    assert body["error"] == "rate_limit_exceeded" and body["detail"] == body["message"]
    assert 12 - (answered - started) <= body["retry_after_seconds"] <= 12
    by_name = {status["name"]: status for status in body["limits"]}
    assert by_name["rpm"]["requested"] == 1 and by_name["rpm"]["capacity"] == 5 and by_name["rpm"]["exceeded"]
    assert 0 <= by_name["rpm"]["available"] < 1
    assert by_name["tpm"]["requested"] == 10 and not by_name["tpm"]["exceeded"]


def test_streamed_answer_adjusts_to_the_real_token_count(proxy: str, endpoint_url: str, table: str) -> None:
    key = fresh()
    words = "one two three four five six seven".split()
    with httpx.Client(base_url=proxy, timeout=60) as client:
        started = time.monotonic()
        with client.stream("POST", CHAT, headers={"x-api-key": key},
                           json={"prompt": " ".join(words), "max_tokens": 50}) as response:
            limits = structured_list(response.headers["ratelimit"])
            chunks = [chunk for chunk in response.iter_text()]
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert "".join(chunks).split() == words
    # At admission the estimate (50) was taken: 950 left, plus what refilled meanwhile (1000/min).
    assert 950 <= limits["tpm"]["r"] <= 950 + math.ceil(elapsed * 1000 / 60)
    # The adjust ran after the last chunk, before the body ended: the bucket holds the real count.
    assert counters(endpoint_url, table, key, "chat") == {"rpm": 1.0, "tpm": 7.0}


def test_a_failing_handler_gets_its_lease_refunded(proxy: str, endpoint_url: str, table: str) -> None:
    key = fresh()
    limits = [Limit.per_minute("rpm", 5), Limit.per_minute("tpm", 1000)]
    with httpx.Client(base_url=proxy, timeout=60) as client:
        assert chat(client, key, max_tokens=40, fail=True).status_code == 500
    assert counters(endpoint_url, table, key, "chat") == {"rpm": 0.0, "tpm": 0.0}  # taken, then given back
    with SyncRateLimiter(table_name=table, region="us-east-1", endpoint_url=endpoint_url) as limiter:
        assert limiter.available(key, "chat", limits) == {"rpm": 5.0, "tpm": 1000.0}


def test_requests_without_a_usable_key_are_answered_400(proxy: str) -> None:
    with httpx.Client(base_url=proxy, timeout=60) as client:
        missing = chat(client, None)
        unusable = chat(client, "a#b")
    assert missing.status_code == 400 and problem(missing)["error"] == "rate_limit_key_invalid"
    assert unusable.status_code == 400 and "entity_id" in problem(unusable)["detail"]


def test_requests_no_rule_matches_pass_untouched(proxy: str) -> None:
    with httpx.Client(base_url=proxy, timeout=60) as client:
        health = client.get("/healthz")
        wrong_method = client.get(CHAT, headers={"x-api-key": fresh()})  # the rule is for POST
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert wrong_method.status_code == 405
    for response in (health, wrong_method):
        assert not {"ratelimit", "ratelimit-policy", "retry-after"} & set(response.headers)


def test_the_fastapi_dependency_limits_its_route(proxy: str, endpoint_url: str, table: str) -> None:
    key = fresh()
    with httpx.Client(base_url=proxy, timeout=60) as client:
        started = time.monotonic()
        answers = [client.post(EMBEDDINGS, headers={"x-api-key": key}, json={"input": "a bb"}) for _ in range(5)]
        refused = client.post(EMBEDDINGS, headers={"x-api-key": key}, json={"input": "a bb"})
        elapsed = time.monotonic() - started
        failing_key = fresh()
        failed = client.post(EMBEDDINGS, headers={"x-api-key": failing_key}, json={"fail": True})
    assert [answer.status_code for answer in answers] == [200] * 5
    assert answers[0].json() == {"embedding": [1.0, 2.0]}
    assert [structured_list(a.headers["ratelimit"])["rpm"]["r"] for a in answers] == [4, 3, 2, 1, 0]
    assert all(a.headers["ratelimit-policy"] == '"rpm";q=5;w=60' for a in answers)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) in wait_range(12, 0, elapsed)
    body = problem(refused)  # add_exception_handlers: the problem body itself, as the middleware sends it
    assert body["type"] == QUOTA_EXCEEDED and body["violated-policies"] == ["rpm"]
    assert failed.status_code == 500
    assert counters(endpoint_url, table, failing_key, "embeddings") == {"rpm": 0.0}


def test_disabled_entities_are_answered_403(endpoint_url: str, table: str) -> None:
    from zae_limiter import SyncRateLimiter

    with SyncRateLimiter(table_name=table, region="us-east-1", endpoint_url=endpoint_url) as admin:
        admin.disable(entity_id="disabled-1")  # every resource of that key
    with uvicorn("web_apps:proxy", settings(endpoint_url, table)) as url, \
            httpx.Client(base_url=url, timeout=60) as client:
        disabled = chat(client, "disabled-1")
        disabled_route = client.post(EMBEDDINGS, headers={"x-api-key": "disabled-1"}, json={"input": "a"})
        enabled = chat(client, fresh())
    for response, resource in ((disabled, "chat"), (disabled_route, "embeddings")):
        assert response.status_code == 403
        assert "retry-after" not in response.headers and "ratelimit" not in response.headers
        body = problem(response)
        assert body == {
            "type": "about:blank", "title": "Forbidden", "status": 403,
            "detail": "entity 'disabled-1' is disabled", "error": "resource_disabled",
            "message": "entity 'disabled-1' is disabled", "entity_id": "disabled-1", "resource": resource,
            "scope": "entity",
        }
    assert enabled.status_code == 200


@pytest.mark.parametrize("policy", ["block", "allow"])
def test_an_unreachable_dynamodb_blocks_with_503_or_passes_marked_unchecked(policy: str) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = settings(nowhere, "rate_limits", ZAE_LIMITER_ON_UNAVAILABLE=policy)
    with uvicorn("web_apps:proxy", env) as url, httpx.Client(base_url=url, timeout=120) as client:
        response = chat(client, fresh(), prompt="still answered")
    assert "ratelimit" not in response.headers
    if policy == "block":
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert problem(response)["error"] == "rate_limiter_unavailable"
    else:
        assert response.status_code == 200
        assert response.headers["zae-limiter-unchecked"] == "?1"
        assert response.text.split() == ["still", "answered"]


def test_two_workers_on_one_limit_never_over_admit(endpoint_url: str, table: str) -> None:
    key = fresh("shared")
    env = settings(endpoint_url, table, LLM_PROXY_RPM="20")
    with uvicorn("web_apps:proxy_with_worker_pid", env, workers=2) as url:
        workers = _worker_pids(url)
        assert len(workers) == 2, workers

        async def hammer() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
                return await asyncio.gather(*(
                    client.post(CHAT, headers={"x-api-key": key}, json={"prompt": "hi", "max_tokens": 10})
                    for _ in range(100)
                ))

        started = time.monotonic()
        answers = asyncio.run(hammer())
        elapsed = time.monotonic() - started
    statuses = [answer.status_code for answer in answers]
    admitted = statuses.count(200)
    assert set(statuses) <= {200, 429}, statuses
    # Never over-admit: capacity 20 plus what refilled (20/min) over the run; never under-admit either.
    assert 20 <= admitted <= 20 + math.floor(elapsed * 20 / 60)
    assert {answer.headers["x-worker-pid"] for answer in answers} == workers  # both served this limit
    assert counters(endpoint_url, table, key, "chat") == {"rpm": float(admitted), "tpm": float(admitted)}


@pytest.mark.parametrize("dynamodb", ["given", "embedded"])
def test_the_example_runs_as_its_docstring_says(dynamodb: str, endpoint_url: str, table: str) -> None:
    # `uvicorn llm_proxy:app --app-dir examples`: against a given endpoint (as `zae-limiter local`
    # prints it), or with none, when the app starts its own embedded DynamoDB.
    env = settings(endpoint_url, table) if dynamodb == "given" else {"ZAE_LIMITER_ENDPOINT_URL": ""}
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "llm_proxy:app", "--app-dir", str(EXAMPLES), "--host", HOST,
               "--port", str(port), "--log-level", "warning"]
    with serve(command, env, port) as url, httpx.Client(base_url=url, timeout=60) as client:
        response = chat(client, fresh(), prompt="hello there model")
    assert response.status_code == 200 and response.text.split() == ["hello", "there", "model"]
    assert response.headers["ratelimit-policy"] == POLICY


def _worker_pids(url: str) -> set[str]:
    """The worker processes answering (fresh connections until both have, or 30 s)."""
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while len(seen) < 2 and time.monotonic() < deadline:
        seen.add(httpx.get(url + "/healthz", timeout=10).headers["x-worker-pid"])
    return seen
