"""Where, and as whom, boto3 would send the data plane's requests: asked of botocore itself.

botocore resolves a DynamoDB endpoint per request from its endpoint rules: the region, FIPS and
dual-stack settings, an account-ID endpoint (`https://{account}.ddb.{region}.amazonaws.com`, under
`account_id_endpoint_mode` and credentials that carry an account id), AWS_ENDPOINT_URL*, profile
settings. `client.meta.endpoint_url` is only the starting point of that resolution. So the data plane
lets the limiter's own boto3 client prepare one request of each hot operation and stops it at
`before-send` (a public botocore event), before anything leaves: the URL, the User-Agent and the
signing scope it would have used are then botocore's, whatever the configuration. Where the lean path
cannot honour a setting (a proxy, a client certificate, adaptive retries, a signature other than
SigV4, an endpoint with a path), `route_for` returns None and boto3 carries every request."""

from __future__ import annotations

import re
import ssl
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# The operations the data plane sends; everything else stays on boto3.
OPERATIONS = ("UpdateItem", "TransactWriteItems", "GetItem", "BatchGetItem")
_SCOPE = re.compile(r"AWS4-HMAC-SHA256 Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request,")


@dataclass(frozen=True)
class Route:
    url: str
    region: str
    service: str
    user_agents: dict[str, str]  # per operation: botocore's User-Agent names features per request
    ssl_context: ssl.SSLContext | None
    tcp_keepalive: bool


def host_header(url: str) -> str:
    """The Host header (and the signed host) for `url`: an IPv6 literal in brackets, the port unless it is
    the scheme's default, as botocore signs it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def tls_context(verify: bool | str) -> ssl.SSLContext:
    """Trust what boto3 trusts: `verify` as the limiter's client was created with."""
    from botocore.httpsession import get_cert_path

    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=get_cert_path(verify))


class _Prepared(Exception):
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(url)
        self.url, self.headers = url, headers


def _stop_before_sending(request: Any, **_: Any) -> None:
    headers = {k.lower(): (v.decode() if isinstance(v, bytes) else str(v)) for k, v in request.headers.items()}
    raise _Prepared(request.url, headers)


def _probe_requests(table: str) -> dict[str, dict[str, Any]]:
    key = {"PK": {"S": "zae-limiter-probe"}, "SK": {"S": "zae-limiter-probe"}}
    return {
        "UpdateItem": {"TableName": table, "Key": key},
        "GetItem": {"TableName": table, "Key": key},
        "BatchGetItem": {"RequestItems": {table: {"Keys": [key]}}},
        "TransactWriteItems": {
            "TransactItems": [{"ConditionCheck": {"TableName": table, "Key": key, "ConditionExpression": "attribute_exists(PK)"}}]
        },
    }


def prepared_by_boto3(client: Any, table: str) -> dict[str, _Prepared] | None:
    """What boto3 would send for each hot operation (URL and headers), stopped before sending; None if
    botocore refuses to prepare one (an account-ID endpoint required without an account id, ...)."""
    from botocore import xform_name

    events = client.meta.events
    unique = "zae-limiter-endpoint-probe"
    events.register_first("before-send.dynamodb", _stop_before_sending, unique_id=unique)
    prepared: dict[str, _Prepared] = {}
    try:
        for operation, request in _probe_requests(table).items():
            try:
                getattr(client, xform_name(operation))(**request)
            except _Prepared as stopped:
                prepared[operation] = stopped
            except Exception:  # botocore's own error, which boto3 would raise on every call too
                return None
    finally:
        events.unregister("before-send.dynamodb", unique_id=unique)
    return prepared


def route_for(client: Any, credentials: Any, table: str, verify: bool | str) -> Route | None:
    """The route of the hot operations as boto3 resolves them, or None where boto3 must carry them."""
    config = client.meta.config
    retries = config.retries or {}
    if credentials is None or config.proxies or config.client_cert or retries.get("mode") == "adaptive":
        return None
    if config.endpoint_discovery_enabled:
        return None
    prepared = prepared_by_boto3(client, table)
    if prepared is None or len(prepared) != len(OPERATIONS):
        return None
    urls = {p.url for p in prepared.values()}
    scopes = {_SCOPE.match(p.headers.get("authorization", "")) for p in prepared.values()}
    if len(urls) != 1 or None in scopes:
        return None
    scope_pairs = {m.groups() for m in scopes if m is not None}
    if len(scope_pairs) != 1:
        return None
    (url,), ((region, service),) = urls, scope_pairs
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.path not in ("", "/") or parts.query or not parts.hostname:
        return None
    if _proxied(parts.scheme, parts.hostname):
        return None
    return Route(
        url=url,
        region=region,
        service=service,
        user_agents={op: p.headers["user-agent"] for op, p in prepared.items() if p.headers.get("user-agent")},
        ssl_context=tls_context(verify) if parts.scheme == "https" else None,
        tcp_keepalive=bool(config.tcp_keepalive),
    )


def _proxied(scheme: str, host: str) -> bool:
    proxies = urllib.request.getproxies()
    return bool(proxies.get(scheme)) and not urllib.request.proxy_bypass(host)
