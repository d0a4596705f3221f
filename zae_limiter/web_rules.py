"""Which requests a web middleware limits, and how: `Rule`, the key functions, and the small
request views the key and consume functions receive. No I/O and no framework: the ASGI and WSGI
middlewares and the FastAPI dependency share all of it.

A rule's `key` and `consume` functions receive a request with (at least) the Starlette `Request`
attributes `headers` (case-insensitive), `method`, `url.path`, `client.host`, `state` and `scope`
(ASGI) or `environ` (WSGI). Under ASGI it is Starlette's own `Request` whenever Starlette is installed.
"""

from __future__ import annotations

import io
import ipaddress
import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Mapping, Sequence

from .core.errors import ValidationError
from .core.limits import Limit

KeyFunction = Callable[[Any], Any]  # request -> str | None (or an awaitable of it, under ASGI)
ConsumeFunction = Callable[[Any], Any]  # request -> Mapping[str, float] (or an awaitable of it)


@dataclass(frozen=True)
class Rule:
    """One limited route: requests it matches are admitted through `limiter.acquire(key(request),
    resource, limits, consume=...)`.

    path: a string is a path prefix matched by whole segments ("/chat" matches /chat and /chat/x, not
          /chatty); a compiled `re.Pattern` is matched with `pattern.match(path)` (anchored at the
          start; end it with `$` to match the whole path); None matches every path.
    methods: HTTP methods it applies to (any case); None: all.
    limits: passed to acquire (None: the stored limits of the key's entity and resource).
    consume: a mapping like {"rpm": 1, "tpm": 500}, or a function of the request returning one.
    """

    resource: str
    key: KeyFunction
    limits: Sequence[Limit] | None = None
    consume: Mapping[str, float] | ConsumeFunction | None = None
    path: str | re.Pattern[str] | None = None
    methods: Iterable[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.resource, str) or not self.resource:
            raise ValidationError("Rule.resource", f"must be a non-empty string, got {self.resource!r}")
        if not callable(self.key):
            raise ValidationError("Rule.key", "must be a function of the request returning the entity id")
        if self.consume is None or (not callable(self.consume) and not isinstance(self.consume, Mapping)):
            raise ValidationError("Rule.consume", "must be a mapping like {'rpm': 1} or a function of the request")
        if self.limits is not None:
            object.__setattr__(self, "limits", tuple(self.limits))
            if not all(isinstance(limit, Limit) for limit in self.limits):
                raise ValidationError("Rule.limits", "must be a list of zae_limiter.Limit, or None for stored limits")
        if self.path is not None and not isinstance(self.path, (str, re.Pattern)):
            raise ValidationError("Rule.path", f"must be a path prefix string or a compiled re.Pattern, got {self.path!r}")
        if isinstance(self.path, str) and not self.path.startswith("/"):
            raise ValidationError("Rule.path", f"a path prefix starts with '/', got {self.path!r}")
        if self.methods is not None:
            object.__setattr__(self, "methods", frozenset(method.upper() for method in self.methods))

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method.upper() not in self.methods:  # type: ignore[operator]
            return False
        return path_matches(self.path, path)


def path_matches(pattern: str | re.Pattern[str] | None, path: str) -> bool:
    if pattern is None:
        return True
    if isinstance(pattern, re.Pattern):
        return pattern.match(path) is not None
    prefix = pattern.rstrip("/")
    return path == prefix or path.startswith(prefix + "/") or (prefix == "" and path.startswith("/"))


def first_match(rules: Sequence[Rule], method: str, path: str) -> Rule | None:
    """The rule a request falls under: the first that matches (one acquire per request)."""
    for rule in rules:
        if rule.matches(method, path):
            return rule
    return None


def check_rules(rules: Any) -> tuple[Rule, ...]:
    rules = tuple(rules or ())
    if not all(isinstance(rule, Rule) for rule in rules):
        raise ValidationError("rules", "must be a list of zae_limiter.asgi.Rule")
    return rules


# -- key functions -----------------------------------------------------------------------------------
def api_key(header: str = "x-api-key") -> KeyFunction:
    """The value of a request header (None when absent: the request is answered 400)."""
    name = header.lower()
    return lambda request: request.headers.get(name) or None


def client_address(trusted_proxies: Iterable[str] = ()) -> KeyFunction:
    """The client's IP address. `X-Forwarded-For` is believed only when the peer that connected is a
    trusted proxy (addresses or networks, e.g. ["10.0.0.0/8", "127.0.0.1"]); then the address is the
    last one in the header that is not itself a trusted proxy. Without trusted proxies the header is
    ignored, so a client cannot pick its own key."""
    networks = tuple(ipaddress.ip_network(proxy, strict=False) for proxy in trusted_proxies)

    def trusted(address: str) -> bool:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in networks)

    def key(request: Any) -> str | None:
        peer = request.client.host if request.client else None
        if peer is None or not networks or not trusted(peer):
            return peer
        hops = [hop.strip() for value in request.headers.getlist("x-forwarded-for") for hop in value.split(",")]
        for hop in reversed([hop for hop in hops if hop]):
            if not trusted(hop):
                return hop
        return hops[0] if hops else peer

    return key


def user(fallback: KeyFunction | None = None) -> KeyFunction:
    """The authenticated user's identity: under ASGI `scope["user"].identity`, as Starlette's
    AuthenticationMiddleware sets it (that middleware must run before this one); under WSGI the
    environ's `REMOTE_USER`. Anonymous requests get `fallback(request)` (for example
    `client_address()`), or None (answered 400)."""

    def key(request: Any) -> Any:
        scope = getattr(request, "scope", None)
        if scope is None:  # WSGI: the server or an outer middleware authenticated it (CGI's REMOTE_USER)
            remote_user = request.environ.get("REMOTE_USER")
            return remote_user or (fallback(request) if fallback is not None else None)
        found = scope.get("user")
        if found is not None and getattr(found, "is_authenticated", False):
            identity = getattr(found, "identity", None)
            if identity:
                return str(identity)
        return fallback(request) if fallback is not None else None

    return key


# -- request views (what key and consume functions receive when Starlette is absent, and under WSGI) --
class Headers(Mapping[str, str]):
    """Case-insensitive, read-only; `getlist` returns every value of a repeated field."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._pairs = [(name.lower(), value) for name, value in pairs]

    def __getitem__(self, name: str) -> str:
        wanted = name.lower()
        for key, value in self._pairs:
            if key == wanted:
                return value
        raise KeyError(name)

    def getlist(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self._pairs if key == wanted]

    def __iter__(self) -> Any:
        return iter(dict.fromkeys(key for key, _ in self._pairs))

    def __len__(self) -> int:
        return len(dict.fromkeys(key for key, _ in self._pairs))


class State:
    """Attribute access over a dict (Starlette's `request.state` over `scope["state"]`)."""

    def __init__(self, values: dict) -> None:
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._values[name] = value


class ASGIRequestView:
    """The Starlette `Request` attributes a rule reads, for ASGI apps without Starlette."""

    def __init__(self, scope: dict, receive: Any = None) -> None:
        self.scope = scope
        self._receive = receive
        self.method = scope.get("method", "GET")
        self.headers = Headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", ()))
        client = scope.get("client")
        self.client = SimpleNamespace(host=client[0], port=client[1]) if client else None
        self.url = SimpleNamespace(path=scope.get("path", "/"), query=scope.get("query_string", b"").decode("latin-1"))
        self.state = State(scope.setdefault("state", {}))

    async def body(self) -> bytes:
        chunks = []
        while True:
            message = await self._receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(chunks)


class WSGIRequestView:
    """The Starlette `Request` attributes a rule reads, over a WSGI environ."""

    def __init__(self, environ: dict) -> None:
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET")
        pairs = [(name[5:].replace("_", "-"), value) for name, value in environ.items() if name.startswith("HTTP_")]
        for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(name):
                pairs.append((name.replace("_", "-"), environ[name]))
        self.headers = Headers(pairs)
        address = environ.get("REMOTE_ADDR")
        self.client = SimpleNamespace(host=address, port=int(environ.get("REMOTE_PORT") or 0)) if address else None
        self.url = SimpleNamespace(path=wsgi_path(environ), query=environ.get("QUERY_STRING", ""))
        self.state = State(environ.setdefault("zae_limiter.state", {}))

    def body(self) -> bytes:
        """The request body, read whole; the app then reads it again from `wsgi.input`."""
        cached = self.environ.get("zae_limiter.body")
        if cached is None:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
            cached = self.environ["wsgi.input"].read(length) if length > 0 else b""
            self.environ["zae_limiter.body"] = cached
            self.environ["wsgi.input"] = io.BytesIO(cached)
        return cached


def wsgi_path(environ: Mapping[str, Any]) -> str:
    """The full request path, as ASGI's `scope["path"]` holds it (SCRIPT_NAME + PATH_INFO)."""
    return (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")) or "/"
