"""The lean data plane: its signature equals botocore's, its errors and retries are those of boto3, and
it never sends a write twice when the first one may have been applied."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from scripted_server import ScriptedDynamoDB, closed_port, self_signed_tls
from zae_limiter import RateLimiterUnavailable, StorageError
from zae_limiter.core.calls import Call, ConditionFailed, TransactionCanceled
from zae_limiter.transport.clients import make_client_with_credentials
from zae_limiter.transport.dataplane import DataPlane
from zae_limiter.transport.sigv4 import Signer
from zae_limiter.stats import RequestStats

UPDATE = Call("UpdateItem", {"TableName": "t", "Key": {"PK": {"S": "a"}, "SK": {"S": "b"}}, "UpdateExpression": "ADD n :one",
                             "ExpressionAttributeValues": {":one": {"N": "1"}}})
GET = Call("GetItem", {"TableName": "t", "Key": {"PK": {"S": "a"}, "SK": {"S": "b"}}})


@pytest.mark.parametrize("token", [None, "SESSION-TOKEN"])
@pytest.mark.parametrize("host", ["dynamodb.eu-west-1.amazonaws.com", "127.0.0.1:8000"])
def test_signature_is_botocores_byte_for_byte(token, host):
    now = datetime(2026, 11, 25, 13, 37, 42, tzinfo=timezone.utc)
    body = b'{"TableName":"t","Key":{"PK":{"S":"a"}}}'
    target = "DynamoDB_20120810.UpdateItem"
    request = AWSRequest(method="POST", url=f"https://{host}/", data=body,
                         headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target})
    with mock.patch("botocore.auth.get_current_datetime", return_value=now.replace(tzinfo=None)):
        SigV4Auth(Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token), "dynamodb", "eu-west-1").add_auth(request)
    ours = Signer("eu-west-1").headers(host, target, body, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token, now)
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["X-Amz-Date"] == request.headers["X-Amz-Date"]
    if token:
        assert ours["X-Amz-Security-Token"] == token


def plane(url: str, attempts: int = 3, read_timeout: float = 2.0) -> DataPlane:
    return DataPlane(url, "us-east-1", Credentials("AK", "SK"), connect_timeout=1, read_timeout=read_timeout,
                     max_attempts=attempts, stats=RequestStats())


def test_it_takes_the_boto3_clients_endpoint_timeouts_and_retries():
    client, credentials, _ = make_client_with_credentials(
        "dynamodb", "eu-west-1", "http://127.0.0.1:4566", Config(read_timeout=7, connect_timeout=3, retries={"max_attempts": 5})
    )
    built = DataPlane.for_client(client, credentials)
    assert (built.hostname, built.port, built.host_header) == ("127.0.0.1", 4566, "127.0.0.1:4566")
    assert built.signer.region == "eu-west-1"
    assert (built.connect_timeout, built.read_timeout, built.max_attempts) == (3, 7, 6)
    aws, creds, _ = make_client_with_credentials("dynamodb", "eu-west-1", None)
    if creds is not None:
        assert DataPlane.for_client(aws, creds).host_header == "dynamodb.eu-west-1.amazonaws.com"


def test_a_proxy_sends_everything_through_boto3(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client, credentials, _ = make_client_with_credentials("dynamodb", "us-east-1", "https://dynamodb.us-east-1.amazonaws.com")
    assert DataPlane.for_client(client, Credentials("a", "b")) is None


def test_request_is_the_wire_format_with_a_valid_signature():
    with ScriptedDynamoDB() as server:
        server.script.append(("ok", {"Attributes": {"n": {"N": "1"}}}))
        assert plane(server.url).call(UPDATE) == {"Attributes": {"n": {"N": "1"}}}
        (received,) = server.received
        assert received["target"] == "DynamoDB_20120810.UpdateItem"
        assert received["body"] == UPDATE.request
        assert received["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AK/")
        assert received["headers"]["Host"] == server.url.removeprefix("http://")


def test_connections_are_kept_alive():
    with ScriptedDynamoDB() as server:
        dp = plane(server.url)
        for _ in range(5):
            dp.call(GET)
        assert server.connections == 1
        dp.close()


def test_throttling_is_retried_then_succeeds():
    with ScriptedDynamoDB() as server:
        server.script += [("error", 400, "ThrottlingException", "slow down", {}), ("error", 500, "InternalServerError", "oops", {}),
                          ("ok", {"Attributes": {}})]
        dp = plane(server.url, attempts=3)
        assert dp.call(UPDATE) == {"Attributes": {}}
        assert server.targets() == ["UpdateItem"] * 3
        assert dp.stats.requests == {"UpdateItem": 3}


def test_throttling_past_the_budget_is_unavailable():
    with ScriptedDynamoDB() as server:
        server.script += [("error", 400, "ProvisionedThroughputExceededException", "hot", {})] * 3
        with pytest.raises(RateLimiterUnavailable, match="after 2 attempts.*ProvisionedThroughputExceededException"):
            plane(server.url, attempts=2).call(UPDATE)
        assert len(server.received) == 2


def test_errors_map_like_boto3():
    old = {"PK": {"S": "a"}, "b_rpm": {"N": "5"}}
    with ScriptedDynamoDB() as server:
        dp = plane(server.url)
        server.script.append(("error", 400, "ConditionalCheckFailedException", "The conditional request failed", {"Item": old}))
        with pytest.raises(ConditionFailed) as failed:
            dp.call(UPDATE)
        assert failed.value.item == old
        reasons = [{"Code": "ConditionalCheckFailed", "Item": old}, {"Code": "None"}]
        server.script.append(("error", 400, "TransactionCanceledException", "cancelled", {"CancellationReasons": reasons}))
        with pytest.raises(TransactionCanceled) as canceled:
            dp.call(Call("TransactWriteItems", {"TransactItems": []}))
        assert canceled.value.reasons == [("ConditionalCheckFailed", old), ("None", None)]
        server.script.append(("error", 400, "AccessDeniedException", "not authorized", {}))
        with pytest.raises(StorageError, match="AccessDeniedException: not authorized") as denied:
            dp.call(UPDATE)
        assert not isinstance(denied.value, RateLimiterUnavailable)  # never "allowed" by on_unavailable
        server.script.append(("error", 400, "ResourceNotFoundException", "no table", {}))
        with pytest.raises(StorageError, match="zae-limiter deploy"):
            dp.call(UPDATE)
        assert len(server.received) == 4  # none of these is retried


def test_a_write_without_an_answer_is_not_sent_again():
    with ScriptedDynamoDB() as server:
        server.script.append(("delay", 1.0, {}))
        with pytest.raises(RateLimiterUnavailable, match="may or may not have been applied"):
            plane(server.url, read_timeout=0.2).call(UPDATE)
        assert server.targets() == ["UpdateItem"]


def test_a_dropped_write_is_not_sent_again_but_a_dropped_read_is():
    with ScriptedDynamoDB() as server:
        server.script.append(("drop",))
        with pytest.raises(RateLimiterUnavailable, match="not sent again"):
            plane(server.url).call(UPDATE)
        server.script.append(("drop",))
        assert plane(server.url).call(GET) == {}
        assert server.targets() == ["UpdateItem", "GetItem", "GetItem"]


def test_nothing_listening_is_unavailable_after_the_budget():
    dp = plane(f"http://127.0.0.1:{closed_port()}", attempts=2)
    with pytest.raises(RateLimiterUnavailable, match="cannot connect"):
        dp.call(UPDATE)


def test_capacity_is_asked_for_and_counted_when_tracking():
    with ScriptedDynamoDB() as server:
        dp = plane(server.url)
        dp.stats.track_capacity = True
        server.script.append(("ok", {"ConsumedCapacity": {"TableName": "t", "CapacityUnits": 1.0}}))
        dp.call(UPDATE)
        assert server.received[0]["body"]["ReturnConsumedCapacity"] == "TOTAL"
        assert dp.stats.write_units == 1.0


# -- the asyncio exchange: same decisions, its own connections --------------------------------------
def run(coroutine):
    import asyncio

    return asyncio.run(coroutine)


def test_async_requests_keep_alive_and_retry_throttling():
    with ScriptedDynamoDB() as server:
        dp = plane(server.url)
        server.script += [("error", 400, "ThrottlingException", "slow down", {}), ("ok", {"Attributes": {"n": {"N": "2"}}})]

        async def scenario():
            first = await dp.call_async(UPDATE)
            for _ in range(3):
                await dp.call_async(GET)
            return first

        assert run(scenario()) == {"Attributes": {"n": {"N": "2"}}}
        assert server.targets() == ["UpdateItem", "UpdateItem", "GetItem", "GetItem", "GetItem"]
        assert server.connections == 1
        assert server.received[0]["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AK/")
        dp.close()


def test_https_with_the_endpoints_certificate_keeps_alive_in_both_drivers_and_refuses_an_unknown_one(tmp_path):
    import ssl

    server_context, cert = self_signed_tls(tmp_path)
    with ScriptedDynamoDB(tls=server_context) as server:
        assert server.url.startswith("https://")
        trusting = DataPlane(server.url, "us-east-1", Credentials("AK", "SK"), ssl_context=ssl.create_default_context(cafile=cert),
                             stats=RequestStats())
        for _ in range(3):
            assert trusting.call(GET) == {}

        async def scenario():
            for _ in range(3):
                assert await trusting.call_async(GET) == {}

        run(scenario())
        assert server.connections == 2  # one for the thread, one for the event loop: each kept alive
        assert server.targets() == ["GetItem"] * 6
        trusting.close()
        stranger = DataPlane(server.url, "us-east-1", Credentials("AK", "SK"), ssl_context=ssl.create_default_context(),
                             max_attempts=2, stats=RequestStats())
        with pytest.raises(RateLimiterUnavailable, match="cannot connect") as raised:
            stranger.call(UPDATE)  # a failed handshake sent nothing: safe to retry, then unavailable
        assert isinstance(raised.value.cause, ssl.SSLError)
        assert server.targets() == ["GetItem"] * 6
        stranger.close()


def test_async_ambiguous_write_is_not_resent_and_errors_map():
    with ScriptedDynamoDB() as server:
        dp = plane(server.url, read_timeout=0.2)
        server.script += [("delay", 1.0, {}), ("drop",)]
        with pytest.raises(RateLimiterUnavailable, match="not sent again"):
            run(dp.call_async(UPDATE))
        assert run(dp.call_async(GET)) == {}  # the dropped read is sent again
        assert server.targets() == ["UpdateItem", "GetItem", "GetItem"]
        server.script.append(("error", 400, "ConditionalCheckFailedException", "failed", {"Item": {"b": {"N": "1"}}}))
        with pytest.raises(ConditionFailed) as failed:
            run(dp.call_async(UPDATE))
        assert failed.value.item == {"b": {"N": "1"}}


def test_async_cancellation_never_reuses_a_half_used_connection():
    import asyncio

    with ScriptedDynamoDB() as server:
        dp = plane(server.url)
        server.script += [("delay", 0.5, {"late": True}), ("ok", {"fresh": True})]

        async def scenario():
            task = asyncio.create_task(dp.call_async(GET))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return await dp.call_async(GET)

        assert run(scenario()) == {"fresh": True}  # not the late answer to the cancelled request
        assert server.connections == 2


class EarlyAnswers:
    """A server on 127.0.0.1 that answers each request (200, `{}`) as soon as its head has arrived,
    without reading its body, and never closes: as a server that refuses early or streams its answer."""

    def __init__(self) -> None:
        import socket
        import threading
        import zlib

        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # accepted sockets inherit it
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections: list = []
        self.answer = (f"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\n"
                       f"x-amz-crc32: {zlib.crc32(b'{}')}\r\n\r\n{{}}").encode()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import threading

        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._answer_heads, args=(conn,), daemon=True).start()

    def _answer_heads(self, conn) -> None:
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(1024)
                if not chunk:
                    return
                head += chunk
            conn.sendall(self.answer)  # and the rest of the request is never read
        except OSError:
            return

    def close(self) -> None:
        self.listener.close()
        for conn in self.connections:
            conn.close()


def test_async_an_answer_that_came_before_the_whole_request_left_never_reuses_the_connection():
    """Section 9.6 of RFC 9112: a connection is reused only when both sides of the exchange are complete.
    An 8 MB request outlasts every socket buffer, so when the answer comes most of it is still unsent."""
    big = Call("UpdateItem", {**UPDATE.request, "ExpressionAttributeValues": {":one": {"N": "1"}, ":pad": {"S": "x" * 8_000_000}}})
    server = EarlyAnswers()
    try:
        dp = plane(server.url)

        async def scenario():
            first = await dp.call_async(big)
            second = await dp.call_async(GET)
            return first, second

        assert run(scenario()) == ({}, {})
        # The GET went on a new connection, at once: sent behind the unsent rest of the first request, it
        # would have waited out its read timeout and been sent again.
        assert len(server.connections) == 2
        assert dp.stats.requests == {"UpdateItem": 1, "GetItem": 1}
    finally:
        server.close()


def test_async_nothing_listening_is_unavailable():
    with pytest.raises(RateLimiterUnavailable, match="cannot connect"):
        run(plane(f"http://127.0.0.1:{closed_port()}", attempts=2).call_async(UPDATE))


def test_a_non_json_answer_is_retried_when_5xx_and_a_storage_error_otherwise():
    with ScriptedDynamoDB() as server:
        dp = plane(server.url)
        server.script += [("raw", 503, b"<html>Service Unavailable</html>"), ("ok", {"Item": {}})]
        assert dp.call(GET) == {"Item": {}}
        server.script.append(("raw", 403, b"<html>Forbidden</html>"))
        with pytest.raises(StorageError, match="not JSON") as raised:
            dp.call(UPDATE)
        assert not isinstance(raised.value, RateLimiterUnavailable)
        server.script += [("raw", 502, b"bad gateway")] * 3
        with pytest.raises(RateLimiterUnavailable):
            run(dp.call_async(UPDATE))


def test_connections_do_not_outlive_their_threads_or_loops():
    import gc
    import threading

    with ScriptedDynamoDB() as server:
        dp = plane(server.url)

        def one_call():
            dp.call(GET)

        for _ in range(20):
            thread = threading.Thread(target=one_call)
            thread.start()
            thread.join()
        gc.collect()
        assert len(dp._sync) <= 1  # each thread's connection went with it

        for _ in range(5):  # one event loop after another, as repeated asyncio.run() calls make
            run(dp.call_async(GET))
        run(dp.call_async(GET))
        assert len(dp._async) == 1  # the pools of closed loops were purged
        dp.close()
        assert len(dp._async) == 0


# -- framing faults: the next request always reads its own answer ------------------------------------
def _both(dp: DataPlane, call: Call, api: str):
    return dp.call(call) if api == "sync" else run(dp.call_async(call))


APIS = ["sync", "async"]


@pytest.mark.parametrize("api", APIS)
def test_an_interim_answer_is_skipped_and_the_next_request_reads_its_own(api):
    with ScriptedDynamoDB() as server:
        dp = plane(server.url)
        server.script += [("interim", {"Item": {"first": {"S": "1"}}}), ("ok", {"Item": {"second": {"S": "2"}}})]
        if api == "sync":
            assert dp.call(GET) == {"Item": {"first": {"S": "1"}}}
            assert dp.call(GET) == {"Item": {"second": {"S": "2"}}}
        else:
            async def scenario():
                return [await dp.call_async(GET), await dp.call_async(GET)]

            assert run(scenario()) == [{"Item": {"first": {"S": "1"}}}, {"Item": {"second": {"S": "2"}}}]
        assert server.targets() == ["GetItem", "GetItem"]
        dp.close()


@pytest.mark.parametrize("api", APIS)
def test_stray_bytes_after_an_answer_are_never_read_as_the_next_one(api):
    """A refusal that would have been answered with the stray "success" instead."""
    with ScriptedDynamoDB() as server:
        dp = plane(server.url)
        refused = ("error", 400, "ConditionalCheckFailedException", "The conditional request failed", {"Item": {}})
        server.script += [("stray", {"Attributes": {}}, {"Attributes": {"stray": {"S": "yes"}}}), refused]

        async def scenario():
            first = await dp.call_async(UPDATE)
            with pytest.raises(ConditionFailed):
                await dp.call_async(UPDATE)
            return first

        if api == "sync":
            assert dp.call(UPDATE) == {"Attributes": {}}
            with pytest.raises(ConditionFailed):
                dp.call(UPDATE)
        else:
            assert run(scenario()) == {"Attributes": {}}
        assert server.connections == 2  # the connection that carried stray bytes was not reused
        dp.close()


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("fault", ["badcrc", "truncate"])
def test_an_answer_that_is_not_whole_is_a_lost_answer(api, fault):
    """A write: unknown outcome, never sent again. A read: sent again."""
    from zae_limiter.core.answers import WriteOutcomeUnknown

    with ScriptedDynamoDB() as server:
        dp = plane(server.url)
        server.script += [(fault, {"Attributes": {"n": {"N": "5"}}})]
        with pytest.raises(WriteOutcomeUnknown, match="not sent again"):
            _both(dp, UPDATE, api)
        assert server.targets() == ["UpdateItem"]
        server.script += [(fault, {"Item": {"n": {"N": "5"}}}), ("ok", {"Item": {"n": {"N": "6"}}})]
        assert _both(dp, GET, api) == {"Item": {"n": {"N": "6"}}}
        assert server.targets() == ["UpdateItem", "GetItem", "GetItem"]
        dp.close()


@pytest.mark.parametrize("api", APIS)
def test_a_kept_alive_connection_idle_past_the_limit_is_retired(api, monkeypatch):
    import zae_limiter.transport.connections as connections

    now = [100.0]
    monkeypatch.setattr(connections, "monotonic", lambda: now[0])
    with ScriptedDynamoDB() as server:
        dp = plane(server.url)

        async def twice():
            await dp.call_async(GET)
            now[0] += connections.MAX_IDLE_SECONDS - 0.01
            await dp.call_async(GET)  # still fresh: reused
            now[0] += connections.MAX_IDLE_SECONDS + 0.01
            await dp.call_async(GET)  # idle too long: a new connection

        if api == "sync":
            dp.call(GET)
            now[0] += connections.MAX_IDLE_SECONDS - 0.01
            dp.call(GET)
            now[0] += connections.MAX_IDLE_SECONDS + 0.01
            dp.call(GET)
        else:
            run(twice())
        assert server.connections == 2 and server.targets() == ["GetItem"] * 3
        dp.close()


@pytest.mark.parametrize("api", APIS)
def test_a_write_on_a_connection_the_server_closed_before_it_left_is_sent_on_a_new_one(api):
    """The server closed the idle connection (its FIN arrived before the request went out): nothing was
    sent, so the write goes on a new connection and is applied once."""
    with ScriptedDynamoDB() as server:
        dp = plane(server.url)
        server.script += [("ok-close", {}), ("ok", {"Attributes": {"n": {"N": "2"}}})]

        async def scenario():
            await dp.call_async(GET)
            await asyncio.sleep(0.2)
            return await dp.call_async(UPDATE)

        if api == "sync":
            dp.call(GET)
            time.sleep(0.2)
            result = dp.call(UPDATE)
        else:
            import asyncio

            result = run(scenario())
        assert result == {"Attributes": {"n": {"N": "2"}}}
        assert server.targets() == ["GetItem", "UpdateItem"] and server.connections == 2
        dp.close()


def test_a_request_whose_first_write_fails_was_not_sent():
    """The peer reset the connection before the request: the write fails outright, not a byte left."""
    import asyncio
    import socket

    from zae_limiter.transport.connections import Ambiguous, AsyncConnection, NotSent, SyncConnection

    ours, peer = socket.socketpair()
    peer.close()
    with pytest.raises(NotSent):
        SyncConnection(ours, tls=False).exchange_once([("Host", "x"), ("Content-Length", "2")], b"{}")
    ours.close()
    ours, peer = socket.socketpair()
    peer.close()
    with pytest.raises(Ambiguous):  # over TLS, a request longer than one record may have partly left
        SyncConnection(ours, tls=True).exchange_once([("Host", "x"), ("Content-Length", "20000")], b"x" * 20000)
    ours.close()

    async def scenario():
        ours, peer = socket.socketpair()
        peer.close()
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(lambda: AsyncConnection(loop, ours, False, 0), sock=ours)
        with pytest.raises(NotSent):
            await connection.exchange_once([("Host", "x"), ("Content-Length", "2")], b"{}", 1.0)
        connection.close()

    run(scenario())
