"""Rules, key functions and request views: which requests a middleware limits and under which key.
Pure: no server, no limiter calls."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest

from zae_limiter import Limit, ValidationError
from zae_limiter.asgi import RateLimitMiddleware
from zae_limiter.web_rules import (
    ASGIRequestView,
    Rule,
    WSGIRequestView,
    api_key,
    client_address,
    first_match,
    path_matches,
    user,
)
from zae_limiter.wsgi import RateLimitMiddleware as WSGIRateLimitMiddleware

KEY = api_key()
RPM = [Limit.per_minute("rpm", 5)]


def scope(headers: list[tuple[str, str]] = (), client: tuple[str, int] | None = ("127.0.0.1", 5000), **extra: Any) -> dict:
    return {"type": "http", "method": "GET", "path": "/chat", "query_string": b"",
            "headers": [(k.encode(), v.encode()) for k, v in headers], "client": client, **extra}


@pytest.mark.parametrize("pattern, path, matched", [
    ("/chat", "/chat", True),
    ("/chat", "/chat/", True),
    ("/chat", "/chat/completions", True),
    ("/chat/", "/chat/completions", True),
    ("/chat", "/chatty", False),
    ("/chat", "/", False),
    ("/", "/anything", True),
    (None, "/anything", True),
    (re.compile(r"/v\d+/"), "/v1/chat", True),
    (re.compile(r"/v\d+/"), "/api/v1/chat", False),  # anchored at the start
    (re.compile(r"/v\d+/items$"), "/v2/items/x", False),
])
def test_paths(pattern: Any, path: str, matched: bool) -> None:
    assert path_matches(pattern, path) is matched


def test_methods_and_the_first_matching_rule() -> None:
    post_chat = Rule(resource="a", key=KEY, limits=RPM, consume={"rpm": 1}, path="/chat", methods=["post"])
    any_chat = Rule(resource="b", key=KEY, limits=RPM, consume={"rpm": 1}, path="/chat")
    rules = [post_chat, any_chat]
    assert first_match(rules, "POST", "/chat/x") is post_chat
    assert first_match(rules, "GET", "/chat") is any_chat
    assert first_match(rules, "GET", "/other") is None


@pytest.mark.parametrize("arguments, field", [
    ({"resource": "", "key": KEY, "consume": {"rpm": 1}}, "Rule.resource"),
    ({"resource": "r", "key": "x-api-key", "consume": {"rpm": 1}}, "Rule.key"),
    ({"resource": "r", "key": KEY}, "Rule.consume"),
    ({"resource": "r", "key": KEY, "consume": 1}, "Rule.consume"),
    ({"resource": "r", "key": KEY, "consume": {"rpm": 1}, "limits": ["rpm=5/min"]}, "Rule.limits"),
    ({"resource": "r", "key": KEY, "consume": {"rpm": 1}, "path": "chat"}, "Rule.path"),
    ({"resource": "r", "key": KEY, "consume": {"rpm": 1}, "path": 3}, "Rule.path"),
])
def test_bad_rules_name_the_field(arguments: dict, field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Rule(**arguments)
    assert raised.value.field == field


def test_bad_middleware_options_name_the_field() -> None:
    rule = Rule(resource="r", key=KEY, consume={"rpm": 1})
    limiter = SimpleNamespace(acquire=None)
    cases = [
        ({"limiter": None, "rules": [rule]}, "limiter"),
        ({"limiter": limiter, "rules": ["/chat"]}, "rules"),
        ({"limiter": limiter, "rules": [rule], "unavailable_retry_after": -1}, "unavailable_retry_after"),
        ({"limiter": limiter, "rules": [rule], "refund_statuses": 500}, "refund_statuses"),
    ]
    for middleware in (RateLimitMiddleware, WSGIRateLimitMiddleware):
        for options, field in cases:
            with pytest.raises(ValidationError) as raised:
                middleware(lambda *a: None, **options)
            assert raised.value.field == field


def test_api_key_header_any_case() -> None:
    assert KEY(ASGIRequestView(scope([("X-Api-Key", "k-1")]))) == "k-1"
    assert KEY(ASGIRequestView(scope())) is None
    assert api_key("authorization")(ASGIRequestView(scope([("authorization", "Bearer t")]))) == "Bearer t"


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    forwarded = [("x-forwarded-for", "198.51.100.1, 203.0.113.9"), ("x-forwarded-for", "10.0.0.2")]
    untrusted_peer = ASGIRequestView(scope(forwarded, client=("192.0.2.50", 1)))
    proxied = ASGIRequestView(scope(forwarded, client=("10.0.0.1", 1)))
    assert client_address()(proxied) == "10.0.0.1"  # no trusted proxies: the header is ignored
    assert client_address(["10.0.0.0/8"])(untrusted_peer) == "192.0.2.50"
    # Right to left past trusted hops (10.0.0.2 is one, in the repeated field): the first that is not.
    assert client_address(["10.0.0.0/8"])(proxied) == "203.0.113.9"
    all_trusted = ASGIRequestView(scope([("x-forwarded-for", "10.9.9.9")], client=("10.0.0.1", 1)))
    assert client_address(["10.0.0.0/8"])(all_trusted) == "10.9.9.9"
    assert client_address(["::1"])(ASGIRequestView(scope([("x-forwarded-for", "2001:db8::7")], client=("::1", 1)))) == "2001:db8::7"
    assert client_address()(ASGIRequestView(scope(client=None))) is None


def test_user_identity_with_a_fallback() -> None:
    authenticated = SimpleNamespace(is_authenticated=True, identity="user-7")
    anonymous = SimpleNamespace(is_authenticated=False, identity="")
    assert user()(ASGIRequestView(scope(user=authenticated))) == "user-7"
    assert user()(ASGIRequestView(scope(user=anonymous))) is None
    assert user(client_address())(ASGIRequestView(scope(user=anonymous))) == "127.0.0.1"
    assert user()(WSGIRequestView({"REMOTE_USER": "alice"})) == "alice"
    assert user(client_address())(WSGIRequestView({"REMOTE_ADDR": "192.0.2.1"})) == "192.0.2.1"


def test_request_views_have_the_starlette_attributes_a_rule_reads() -> None:
    asgi_scope = scope([("x-api-key", "k")], path="/chat/x")
    view = ASGIRequestView(asgi_scope)
    view.state.note = 1
    assert (view.method, view.url.path, view.client.host, view.headers["X-API-KEY"]) == ("GET", "/chat/x", "127.0.0.1", "k")
    assert asgi_scope["state"] == {"note": 1}  # like request.state, it writes scope["state"]
    environ = {"REQUEST_METHOD": "POST", "SCRIPT_NAME": "/api", "PATH_INFO": "/chat", "HTTP_X_API_KEY": "k",
               "CONTENT_TYPE": "application/json", "REMOTE_ADDR": "192.0.2.1", "REMOTE_PORT": "4000"}
    wsgi = WSGIRequestView(environ)
    assert (wsgi.method, wsgi.url.path, wsgi.client.host) == ("POST", "/api/chat", "192.0.2.1")
    assert wsgi.headers["x-api-key"] == "k" and wsgi.headers["content-type"] == "application/json"
