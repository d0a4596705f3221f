"""The benchmark's scenarios as plain data, shared by both sides of a comparison.

Standard library only, with no imports from this package: the runner for the published package
loads this file by path inside another virtual environment, where `zae_limiter` is that package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

APIS = ("sync", "async")
CONCURRENCIES = (1, 32)


@dataclass(frozen=True)
class LimitSpec:
    """`Limit.per_<period>(name, rate)`, spelled the same way in both packages."""

    name: str
    period: str  # second | minute | hour | day
    rate: int


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    limits: tuple[LimitSpec, ...]
    consume: dict[str, int]
    cascade: bool = False  # the entity has a parent and cascade=True; both carry `limits`
    body: str = "none"  # none | adjust | raise: what the code inside `acquire` does
    adjust: dict[str, int] = field(default_factory=dict)
    rejects: bool = False  # every measured acquire is expected to raise RateLimitExceeded
    # Options of ours that the scenario turns on (the published package runs its defaults).
    our_options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "limits": [[l.name, l.period, l.rate] for l in self.limits],
            "consume": dict(self.consume),
            "cascade": self.cascade,
            "body": self.body,
            "adjust": dict(self.adjust),
            "rejects": self.rejects,
            "our_options": dict(self.our_options),
        }


# Rates far above what one machine can drive, so that only the rejection scenario ever rejects.
RPM = LimitSpec("rpm", "minute", 10_000_000)
TPM = LimitSpec("tpm", "minute", 1_000_000_000)
RPD = LimitSpec("rpd", "day", 1_000_000_000)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("single", "single limit", (RPM,), {"rpm": 1}),
    Scenario("three", "3 limits", (RPM, TPM, RPD), {"rpm": 1, "tpm": 500, "rpd": 1}),
    Scenario("cascade", "cascade to parent", (RPM, TPM), {"rpm": 1, "tpm": 500}, cascade=True),
    # One token a day: the warm-up takes it, and every acquire after that is refused.
    Scenario("rejection", "rejection", (LimitSpec("rpd", "day", 1),), {"rpd": 1}, rejects=True),
    # The same with our opt-in local rejection (a refusal from a fresh view of an exhausted bucket).
    Scenario("rejection-cached", "rejection, local cache", (LimitSpec("rpd", "day", 1),), {"rpd": 1}, rejects=True,
             our_options={"reject_cache_seconds": 1.0}),
    Scenario("adjust", "acquire + adjust", (RPM, TPM), {"rpm": 1, "tpm": 500}, body="adjust", adjust={"tpm": 242}),
    Scenario("refund", "refund on error", (RPM, TPM), {"rpm": 1, "tpm": 500}, body="raise"),
)
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


class BodyError(Exception):
    """Raised inside `acquire` by the refund scenario: the lease must give everything back."""


def sync_op(scenario: Scenario, acquire: Callable[[], Any], refused: type[BaseException]) -> Callable[[], bool]:
    """One measured acquire and its body, the same for both packages: `acquire()` opens the package's
    `acquire(...)` context, `refused` is its RateLimitExceeded. True when refused as the scenario expects."""

    def op() -> bool:
        try:
            with acquire() as lease:
                if scenario.body == "adjust":
                    lease.adjust(**scenario.adjust)
                elif scenario.body == "raise":
                    raise BodyError()
        except refused:
            if not scenario.rejects:
                raise
            return True
        except BodyError:
            pass
        return False

    return op


def async_op(scenario: Scenario, acquire: Callable[[], Any], refused: type[BaseException]) -> Callable[[], Awaitable[bool]]:
    """`sync_op` for the async APIs."""

    async def op() -> bool:
        try:
            async with acquire() as lease:
                if scenario.body == "adjust":
                    await lease.adjust(**scenario.adjust)
                elif scenario.body == "raise":
                    raise BodyError()
        except refused:
            if not scenario.rejects:
                raise
            return True
        except BodyError:
            pass
        return False

    return op


def scenario_from_dict(data: dict) -> Scenario:
    return Scenario(
        name=data["name"],
        title=data["title"],
        limits=tuple(LimitSpec(*limit) for limit in data["limits"]),
        consume=dict(data["consume"]),
        cascade=data["cascade"],
        body=data["body"],
        adjust=dict(data["adjust"]),
        rejects=data["rejects"],
        our_options=dict(data.get("our_options", {})),
    )
