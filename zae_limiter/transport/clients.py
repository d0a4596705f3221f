"""Creating the boto3 DynamoDB client: timeouts, retries, pool size and emulator credentials."""

from __future__ import annotations

import os
from typing import Any, NamedTuple
from urllib.parse import urlparse

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import Credentials

from ..core.errors import ValidationError

DEFAULT_CONFIG = Config(
    connect_timeout=1,
    read_timeout=2,
    retries={"mode": "standard", "total_max_attempts": 3},
    max_pool_connections=64,
)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def is_loopback(endpoint_url: str | None) -> bool:
    return bool(endpoint_url) and (urlparse(endpoint_url).hostname or "") in LOOPBACK_HOSTS


def check_endpoint(endpoint_url: Any) -> str | None:
    if endpoint_url is None:
        return None
    parsed = urlparse(endpoint_url) if isinstance(endpoint_url, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValidationError("endpoint_url", f"must be an http(s) URL such as http://127.0.0.1:8000, got {endpoint_url!r}")
    return endpoint_url


class ClientParts(NamedTuple):
    client: Any
    credentials: Any  # botocore's chain: refreshed as they expire
    verify: bool | str  # what TLS certificates are checked against (the data plane trusts the same)


def tls_verify(session: botocore.session.Session) -> bool | str:
    """Decided once and given to the client explicitly, so the data plane can trust exactly what boto3
    trusts: the `ca_bundle` setting (AWS_CA_BUNDLE or the profile's ca_bundle), else REQUESTS_CA_BUNDLE
    (which botocore's endpoint reads when none is given), else botocore's default bundle."""
    return session.get_config_variable("ca_bundle") or os.environ.get("REQUESTS_CA_BUNDLE") or True


def make_client(
    service: str,
    region: str | None,
    endpoint_url: str | None = None,
    config: Config | None = None,
) -> Any:
    """A client on its own session (boto3's default session is not thread-safe to create clients from).
    On a loopback emulator with no credentials configured, dummy ones are used: emulators ignore them."""
    return make_client_with_credentials(service, region, endpoint_url, config).client


def make_client_with_credentials(
    service: str,
    region: str | None,
    endpoint_url: str | None = None,
    config: Config | None = None,
) -> ClientParts:
    """The client, the credentials it signs with and the TLS trust it was given."""
    core = botocore.session.Session()
    session = boto3.session.Session(botocore_session=core)
    credentials = session.get_credentials()
    kwargs: dict[str, Any] = {}
    if is_loopback(endpoint_url) and credentials is None:
        kwargs = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
        credentials = Credentials("local", "local")
    merged = DEFAULT_CONFIG.merge(config) if config is not None else DEFAULT_CONFIG
    verify = tls_verify(core)
    client = session.client(service, region_name=region, endpoint_url=endpoint_url, config=merged, verify=verify, **kwargs)
    return ClientParts(client, credentials, verify)
