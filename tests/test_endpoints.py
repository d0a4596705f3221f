"""The data plane sends where boto3 would, signed as boto3 would, with boto3's User-Agent: each expected
value is what a plain boto3 client prepares for the same settings (stopped before it sends), and the
Host header of an IPv6 endpoint is RFC 3986's bracketed literal. Nothing here reaches the network."""

from __future__ import annotations

import socket
from datetime import datetime, timezone
from unittest import mock

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from conftest import transport_of
from scripted_server import ScriptedDynamoDB
from zae_limiter import Limit, SyncRateLimiter
from zae_limiter.transport.dataplane import DataPlane
from zae_limiter.transport.endpoints import host_header
from zae_limiter.transport.sigv4 import Signer

ACCOUNT = "123456789012"


class Stop(Exception):
    pass


def what_boto3_prepares(client, operation="update_item", **request):
    """The URL and headers boto3 sends an UpdateItem with (stopped before sending)."""
    seen = {}

    def stop(request, **_):
        seen["url"], seen["headers"] = request.url, {k: (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()}
        raise Stop()

    client.meta.events.register_first("before-send.dynamodb", stop, unique_id="test-stop")
    try:
        getattr(client, operation)(**(request or {"TableName": "t", "Key": {"PK": {"S": "a"}}}))
    except Stop:
        pass
    finally:
        client.meta.events.unregister("before-send.dynamodb", unique_id="test-stop")
    return seen


def client(region="us-east-1", config=None, **kwargs):
    kwargs.setdefault("aws_access_key_id", "AKID")
    kwargs.setdefault("aws_secret_access_key", "SECRET")
    return boto3.session.Session().client("dynamodb", region_name=region, config=config, **kwargs)


@pytest.mark.parametrize(
    "settings, host",
    [
        ({}, "dynamodb.us-east-1.amazonaws.com"),
        ({"aws_account_id": ACCOUNT}, f"{ACCOUNT}.ddb.us-east-1.amazonaws.com"),  # account_id_endpoint_mode "preferred"
        ({"aws_account_id": ACCOUNT, "config": Config(account_id_endpoint_mode="disabled")}, "dynamodb.us-east-1.amazonaws.com"),
        ({"config": Config(use_fips_endpoint=True)}, "dynamodb-fips.us-east-1.amazonaws.com"),
        ({"config": Config(use_dualstack_endpoint=True)}, "dynamodb.us-east-1.api.aws"),
        ({"region": "cn-north-1"}, "dynamodb.cn-north-1.amazonaws.com.cn"),
    ],
)
def test_requests_go_where_boto3_sends_them(settings, host):
    settings = dict(settings)
    region = settings.pop("region", "us-east-1")
    boto = client(region, **settings)
    expected = what_boto3_prepares(boto)
    assert expected["url"] == f"https://{host}/"  # what botocore resolves, the definition
    plane = DataPlane.for_client(boto, Credentials("AKID", "SECRET"), table="t")
    assert (plane.hostname, plane.port, plane.host_header, plane.https) == (host, 443, host, True)
    assert plane.signer.region == region and plane.signer.service == "dynamodb"


def test_an_account_id_endpoint_is_required_without_an_account_id_so_boto3_carries_the_requests():
    boto = client(config=Config(account_id_endpoint_mode="required"))
    assert DataPlane.for_client(boto, Credentials("AKID", "SECRET"), table="t") is None


@pytest.mark.parametrize(
    "config",
    [
        Config(retries={"mode": "adaptive"}),  # client-side rate limiting the lean path does not do
        Config(proxies={"https": "http://proxy.internal:3128"}),
        Config(client_cert="/nonexistent/client.pem"),
        Config(signature_version="v4a"),
    ],
    ids=["adaptive", "proxy", "client-cert", "sigv4a"],
)
def test_settings_the_lean_path_cannot_honour_leave_every_request_to_boto3(config):
    assert DataPlane.for_client(client(config=config), Credentials("AKID", "SECRET"), table="t") is None


@pytest.mark.parametrize(
    "url, host",
    [
        ("http://[::1]:8000", "[::1]:8000"),
        ("https://[2001:db8::1]", "[2001:db8::1]"),
        ("http://127.0.0.1:80", "127.0.0.1"),
        ("https://dynamodb.eu-west-1.amazonaws.com:443", "dynamodb.eu-west-1.amazonaws.com"),
        ("https://LocalHost:4566", "localhost:4566"),
    ],
)
def test_the_host_header_is_the_one_botocore_signs(url, host):
    assert host_header(url) == host
    now = datetime(2026, 11, 25, 13, 37, 42, tzinfo=timezone.utc)
    body = b"{}"
    request = AWSRequest(method="POST", url=url + "/", data=body,
                         headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.GetItem"})
    with mock.patch("botocore.auth.get_current_datetime", return_value=now.replace(tzinfo=None)):
        SigV4Auth(Credentials("AKID", "SECRET"), "dynamodb", "us-east-1").add_auth(request)
    ours = Signer("us-east-1").headers(host_header(url), "DynamoDB_20120810.GetItem", body, "AKID", "SECRET", None, now)
    assert ours["Authorization"] == request.headers["Authorization"]


def test_an_ipv6_endpoint_keeps_its_brackets_in_the_host_header():
    plane = DataPlane.for_client(client(endpoint_url="http://[::1]:8000"), Credentials("AKID", "SECRET"), table="t")
    assert (plane.hostname, plane.port, plane.host_header) == ("::1", 8000, "[::1]:8000")


@pytest.mark.parametrize("api", ["sync", "async"])
def test_the_user_agent_is_boto3s(api):
    import asyncio

    with ScriptedDynamoDB() as server:
        limiter_config = Config(user_agent_appid="billing-svc")
        boto = client(endpoint_url=server.url, config=limiter_config)
        expected = what_boto3_prepares(boto)["headers"]["User-Agent"]
        plane = DataPlane.for_client(boto, Credentials("AKID", "SECRET"), table="t")
        from zae_limiter.core.calls import Call

        call = Call("UpdateItem", {"TableName": "t", "Key": {"PK": {"S": "a"}}})
        plane.call(call) if api == "sync" else asyncio.run(plane.call_async(call))
        sent = server.received[0]["headers"]["User-Agent"]
        assert sent == expected and "app/billing-svc" in sent and sent.startswith("Boto3/")
        plane.close()


def test_tcp_keepalive_is_honoured(endpoint_url, table_name):
    limiter = SyncRateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url,
                              boto_config=Config(tcp_keepalive=True))
    try:
        plane = transport_of(limiter).dataplane
        assert plane.endpoint.tcp_keepalive
        limiter.available("k", "api", [Limit.per_minute("rpm", 1)])
        (connection,) = list(plane._sync._all)
        assert connection.sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    finally:
        limiter.close()
