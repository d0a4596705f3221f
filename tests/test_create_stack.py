"""`RateLimiter(create_stack=True | stack_options=...)` ensures the stack on enter; `delete_stack()` removes it.
The engine is the recording PulumiCommand (DESIGN section 10)."""

from __future__ import annotations

import asyncio

import pytest

from recording_pulumi import RecordingPulumiCommand
from zae_limiter import RateLimiter, StackOptions, SyncRateLimiter, ValidationError
from zae_limiter.stack import stack_config


@pytest.fixture
def engine():
    return RecordingPulumiCommand()


def kwargs(engine, tmp_path):
    return {
        "table_name": "rate_limits",
        "region": "us-east-1",
        "backend_url": f"file://{tmp_path}/state",
        "pulumi_command": engine,
    }


def test_create_stack_with_parameters_on_async_enter_then_delete(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    limiter = RateLimiter(
        create_stack=True,
        stack_parameters={"snapshot_windows": "hourly,daily", "retention_days": "90"},
        **kwargs(engine, tmp_path),
    )

    async def scenario():
        async with limiter:
            assert limiter.stack_outputs == engine.deployed_outputs
        await limiter.delete_stack()

    asyncio.run(scenario())
    assert engine.config["zae-limiter-rate_limits"] == stack_config(
        "rate_limits", "us-east-1", StackOptions(snapshot_windows="hourly,daily", snapshot_retention_days=90)
    )
    assert "up" in engine.verbs() and engine.verbs()[-1] == "stack rm"
    assert engine.stacks == {}


def test_stack_options_on_sync_enter(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with SyncRateLimiter(stack_options=StackOptions(enable_aggregator=False), **kwargs(engine, tmp_path)):
        pass
    assert engine.config["zae-limiter-rate_limits"]["zae-limiter:enableAggregator"] == "false"


def test_without_stack_options_the_engine_is_never_touched(engine, tmp_path):
    with SyncRateLimiter(**kwargs(engine, tmp_path)):
        pass
    assert engine.calls == []


def test_bad_stack_parameters_name_the_field(engine, tmp_path):
    with pytest.raises(ValidationError, match=r"stack_parameters\['retention'\]"):
        RateLimiter(create_stack=True, stack_parameters={"retention": "90"}, **kwargs(engine, tmp_path))
    with pytest.raises(ValidationError, match="snapshot_retention_days"):
        RateLimiter(create_stack=True, stack_parameters={"retention_days": "ninety"}, **kwargs(engine, tmp_path))
    with pytest.raises(ValidationError, match="stack_options"):
        RateLimiter(stack_options={"enable_aggregator": False}, **kwargs(engine, tmp_path))
