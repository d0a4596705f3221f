"""The pytest plugin users get with the package: fixtures, its entry point, and the stack fixture's skip."""

from __future__ import annotations

import textwrap

from zae_limiter import Limit, RateLimiter, SyncRateLimiter


def test_sync_fixture_is_a_ready_limiter(zae_limiter_sync):
    assert isinstance(zae_limiter_sync, SyncRateLimiter)
    with zae_limiter_sync.acquire("k", "api", [Limit.per_minute("rpm", 2)], consume={"rpm": 2}):
        pass
    assert zae_limiter_sync.available("k", "api", [Limit.per_minute("rpm", 2)])["rpm"] < 0.1


async def test_async_fixture_is_a_ready_limiter(zae_limiter):
    assert isinstance(zae_limiter, RateLimiter)
    async with zae_limiter.acquire("k", "api", [Limit.per_minute("rpm", 5)], consume={"rpm": 1}):
        pass
    assert (await zae_limiter.available("k", "api", [Limit.per_minute("rpm", 5)]))["rpm"] < 5


def test_each_test_gets_a_fresh_table(zae_limiter_table_name, zae_limiter_sync):
    assert zae_limiter_sync.table_name == zae_limiter_table_name
    assert zae_limiter_sync.get_system_defaults() == []


def test_plugin_is_registered_by_entry_point_and_skips_the_stack_with_a_reason(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no Pulumi CLI here, whatever the machine has
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "no-pulumi"))
    pytester.makepyfile(
        textwrap.dedent(
            """
            from zae_limiter import Limit

            def test_uses_the_plugin(zae_limiter_sync):
                with zae_limiter_sync.acquire("k", "r", [Limit.per_second("rps", 1)], consume={"rps": 1}):
                    pass

            def test_needs_a_stack(zae_limiter_stack):
                raise AssertionError("must be skipped without the Pulumi CLI")
            """
        )
    )
    result = pytester.runpytest_subprocess("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*ephemeral Pulumi stack not available*Pulumi CLI is not installed*"])
