"""Shared fixtures: the embedded server and fresh tables come from the project's own pytest plugin
(zae_limiter.testing, the one users get), plus the limiter under test in both its sync and async form
(the async one driven through a small sync adapter, so every rule is checked against both APIs with the
same test body)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Iterator

import pytest

from hammer import HARNESS

from zae_limiter import RateLimiter, SyncRateLimiter

REGION = "us-east-1"

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def endpoint_url(zae_limiter_endpoint: str) -> str:
    return zae_limiter_endpoint


@pytest.fixture
def table_name(zae_limiter_table_name: str) -> str:
    return zae_limiter_table_name


class FakeClock:
    """Nanoseconds since the epoch, moved only by the test."""

    def __init__(self, start_ns: int = 1_800_000_000 * 10**9) -> None:
        self.now = start_ns

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 10**9)


class _AsyncLeaseAdapter:
    def __init__(self, lease: Any, runner: asyncio.Runner) -> None:
        self._lease, self._runner = lease, runner

    def adjust(self, **deltas: float) -> None:
        self._runner.run(self._lease.adjust(**deltas))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lease, name)


class _AsyncAcquireAdapter:
    def __init__(self, context: Any, runner: asyncio.Runner) -> None:
        self._context, self._runner = context, runner

    def __enter__(self) -> _AsyncLeaseAdapter:
        return _AsyncLeaseAdapter(self._runner.run(self._context.__aenter__()), self._runner)

    def __exit__(self, *exc: Any) -> bool:
        return self._runner.run(self._context.__aexit__(*exc))


class AsyncAdapter:
    """Presents a RateLimiter with the SyncRateLimiter interface by running each coroutine to completion."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter
        self.runner = asyncio.Runner()
        self.closed = False

    def acquire(self, *args: Any, **kwargs: Any) -> _AsyncAcquireAdapter:
        return _AsyncAcquireAdapter(self.limiter.acquire(*args, **kwargs), self.runner)

    def close(self) -> None:
        if self.closed:
            return  # a test may close the limiter itself before the fixture does
        self.closed = True
        self.runner.run(self.limiter.close())
        self.runner.close()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.limiter, name)
        if not callable(attr) or name.startswith("__"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            return self.runner.run(result) if inspect.isawaitable(result) else result

        return call


def transport_of(limiter: Any) -> Any:
    """The transport a limiter (or adapter) sends through, opened if needed: both the lean data plane
    and boto3 are behind it, so observing it sees every request."""
    limiter = getattr(limiter, "limiter", limiter)
    transport = limiter._open()
    return getattr(transport, "transport", transport)


class RequestCounter:
    """Counts the DynamoDB requests a limiter sends, by operation."""

    def __init__(self, limiter: Any) -> None:
        self.calls: list[str] = []
        self.requests: list[Any] = []  # the calls themselves (operation and request)
        transport_of(limiter).observers.append(self._on_call)

    def _on_call(self, call: Any) -> None:
        self.calls.append(call.operation)
        self.requests.append(call)

    def reset(self) -> None:
        self.calls.clear()
        self.requests.clear()

    def keys_read(self) -> list[str]:
        """The partition keys every BatchGetItem asked for, in order."""
        return [key["PK"]["S"] for call in self.requests if call.operation == "BatchGetItem"
                for table in call.request["RequestItems"].values() for key in table["Keys"]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sync", "async"])
def make_limiter(request: pytest.FixtureRequest, endpoint_url: str, table_name: str) -> Iterator[Any]:
    """A factory for limiters on this test's table; the same test runs against both APIs."""
    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("table_name", table_name)
        kwargs.setdefault("region", REGION)
        kwargs.setdefault("endpoint_url", endpoint_url)
        if request.param == "sync":
            limiter: Any = SyncRateLimiter(**kwargs)
        else:
            limiter = AsyncAdapter(RateLimiter(**kwargs))
        made.append(limiter)
        return limiter

    make.mode = request.param  # type: ignore[attr-defined]
    yield make
    for limiter in made:
        limiter.close()


@pytest.fixture
def limiter(make_limiter: Any, clock: FakeClock) -> Any:
    """The default configuration, on a fake clock: every rule is checked on what users get."""
    return make_limiter(clock=clock)


@pytest.fixture
def dynamodb(endpoint_url: str) -> Iterator[Any]:
    """A plain boto3 client on the embedded server, for looking at what the limiter wrote."""
    from zae_limiter.transport.clients import make_client

    client = make_client("dynamodb", REGION, endpoint_url, HARNESS)
    yield client
    client.close()
