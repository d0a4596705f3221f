"""The boto3 path's idle-connection retirement (transport/boto3_path.py): after MAX_IDLE_SECONDS without an
answer its pooled connections are closed before the next request, and never while a request is under
way (closing urllib3's pool under a request that holds it fails that request before a byte is sent)."""

from __future__ import annotations

import threading

import zae_limiter.transport.connections as connections
from zae_limiter.core.calls import Call
from zae_limiter.transport.boto3_path import Boto3Transport

GET = Call("GetItem", {"TableName": "t", "Key": {}})


class Client:
    """A boto3 client's shape: `get_item` blocks while `hold` is clear; `close()` is counted."""

    def __init__(self) -> None:
        self.closes = 0
        self.entered = 0
        self.hold = threading.Event()
        self.hold.set()
        self.lock = threading.Condition()

    def get_item(self, **_: object) -> dict:
        with self.lock:
            self.entered += 1
            self.lock.notify_all()
        assert self.hold.wait(10)
        return {}

    def wait_for(self, entered: int) -> bool:
        with self.lock:
            return self.lock.wait_for(lambda: self.entered >= entered, timeout=10)

    def close(self) -> None:
        self.closes += 1


def test_an_idle_pool_is_closed_before_the_next_request_and_never_under_one(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(connections, "monotonic", lambda: now[0])
    client = Client()
    transport = Boto3Transport(client)
    transport.call(GET)
    now[0] += connections.MAX_IDLE_SECONDS - 0.5
    transport.call(GET)
    assert client.closes == 0  # answered within the limit: the pool is kept
    now[0] += connections.MAX_IDLE_SECONDS
    client.hold.clear()
    first = threading.Thread(target=transport.call, args=(GET,))
    first.start()
    assert client.wait_for(3)
    assert client.closes == 1  # idle past the limit: closed before this request went out
    now[0] += 2 * connections.MAX_IDLE_SECONDS  # long under way; another request starts meanwhile
    second = threading.Thread(target=transport.call, args=(GET,))
    second.start()
    assert client.wait_for(4)  # both under way at once
    client.hold.set()
    first.join(10)
    second.join(10)
    assert client.closes == 1  # not closed under the request in flight
