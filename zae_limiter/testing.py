"""pytest plugin (registered as the `zae_limiter` pytest11 entry point): fixtures for users' tests.

    def test_my_endpoint(zae_limiter_sync):            # a SyncRateLimiter on a fresh table
        with zae_limiter_sync.acquire("k", "api", [Limit.per_minute("rpm", 10)], consume={"rpm": 1}):
            ...

Fixtures:
  zae_limiter_endpoint     session: the embedded DynamoDB (moto server on 127.0.0.1); its URL
  zae_limiter_table_name   a fresh table on it, built from the schema module
  zae_limiter              a RateLimiter (asyncio) on that table, closed afterwards
  zae_limiter_sync         a SyncRateLimiter on that table, closed afterwards
  zae_limiter_stack        session: an ephemeral stack deployed through the Automation API to the embedded
                           server, destroyed and removed at the end; skipped, with the reason, where the
                           Pulumi CLI or its AWS plugin is missing
"""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

REGION = "us-east-1"


@pytest.fixture(scope="session")
def zae_limiter_endpoint() -> Iterator[str]:
    from .local import EmbeddedServerError, LocalDynamoDB

    server = LocalDynamoDB()
    failure = None
    try:
        endpoint_url = server.start()
    except EmbeddedServerError as error:  # the local extra missing, for one: say so in a line, no traceback
        failure = f"zae_limiter_endpoint: {error}"
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    try:
        yield endpoint_url
    finally:
        server.stop()


@pytest.fixture
def zae_limiter_table_name(zae_limiter_endpoint: str) -> str:
    from .local import ensure_table

    name = f"zl_{uuid.uuid4().hex[:12]}"
    ensure_table(name, endpoint_url=zae_limiter_endpoint, region=REGION)
    return name


@pytest.fixture
def zae_limiter(zae_limiter_endpoint: str, zae_limiter_table_name: str) -> Iterator[Any]:
    from .limiter import RateLimiter

    limiter = RateLimiter(table_name=zae_limiter_table_name, region=REGION, endpoint_url=zae_limiter_endpoint)
    yield limiter
    limiter.release()


@pytest.fixture
def zae_limiter_sync(zae_limiter_endpoint: str, zae_limiter_table_name: str) -> Iterator[Any]:
    from .sync_limiter import SyncRateLimiter

    with SyncRateLimiter(table_name=zae_limiter_table_name, region=REGION, endpoint_url=zae_limiter_endpoint) as limiter:
        yield limiter


def engine_missing_reason() -> str | None:
    """Why an engine-backed stack cannot run here, or None when it can."""
    from .core.errors import StackError
    from .stack import find_pulumi_command

    try:
        command = find_pulumi_command()
    except StackError as error:
        return str(error)
    try:
        listed = subprocess.run([command.command, "plugin", "ls", "--json"], capture_output=True, text=True, timeout=60)
        plugins = json.loads(listed.stdout or "[]")
    except (OSError, ValueError, subprocess.SubprocessError) as error:
        return f"cannot list Pulumi plugins: {error}"
    if not any(p.get("name") == "aws" and p.get("kind") == "resource" for p in plugins):
        return "the Pulumi AWS provider plugin is not installed (run `pulumi plugin install resource aws`)"
    return None


@dataclass(frozen=True)
class EphemeralStack:
    manager: Any  # the StackManager that deployed it
    outputs: dict[str, Any]
    table_name: str
    endpoint_url: str
    region: str = REGION


@pytest.fixture(scope="session")
def zae_limiter_stack(zae_limiter_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EphemeralStack]:
    """A stack deployed through the Automation API on the embedded server, destroyed at the end."""
    reason = engine_missing_reason()
    if reason:
        pytest.skip(f"ephemeral Pulumi stack not available: {reason}")
    from .stack import StackManager
    from .stack_options import StackOptions

    table_name = f"zl_stack_{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("zae-limiter-stack")
    manager = StackManager(
        table_name=table_name,
        region=REGION,
        endpoint_url=zae_limiter_endpoint,
        backend_url=f"file://{root / 'state'}",
        work_dir=root / "work",
        options=StackOptions(),
    )
    outputs = manager.deploy()
    try:
        yield EphemeralStack(manager, outputs, table_name, zae_limiter_endpoint)
    finally:
        manager.destroy(remove=True)
