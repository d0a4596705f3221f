"""The benchmark's scenarios as plain data, shared by both sides of a comparison.

Standard library only, with no imports from this package: the runner for the published package
loads this file by path inside another virtual environment, where `zae_limiter` is that package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

APIS = ("sync", "async")
CONCURRENCIES = (1, 32)
# The systems a scenario can be measured on: this package, the published zae-limiter (--compare-published)
# and a Redis-backed limiter (--compare-redis).
SYSTEMS = ("ours", "published", "redis")


@dataclass(frozen=True)
class LimitSpec:
    """`Limit.per_<period>(name, rate)`, spelled the same way in both packages."""

    name: str
    period: str  # second | minute | hour | day
    rate: int
    burst: int | None = None  # the capacity; None: the rate

    @property
    def capacity(self) -> int:
        return self.rate if self.burst is None else self.burst

    @property
    def per_second(self) -> float:
        return self.rate / PERIOD_SECONDS[self.period]


PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


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
    # Driven past its limits: refusals are expected, and the admitted consumption of each cell is checked
    # against capacity + refill over the cell's measured time (report.over_admission).
    exhausts: bool = False
    # Rotate over this many entities, each with its own stored limits (0: the one entity `bench-key`).
    entities: int = 0
    # With a rotation: warm up with one whole lap of it, so that every measured acquire is on an entity
    # this client has seen a lap ago (its bucket written); without: every one is an entity never seen.
    revisit: bool = False
    # Process counts of its own (empty: those of --processes).
    processes: tuple[int, ...] = ()
    # The systems it runs on (ours always; the others when they are asked for).
    systems: tuple[str, ...] = ("ours", "published")
    # Options of ours that the scenario turns on (the published package runs its defaults).
    our_options: dict[str, Any] = field(default_factory=dict)

    @property
    def refusals_expected(self) -> bool:
        return self.rejects or self.exhausts

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "limits": [[l.name, l.period, l.rate, l.burst] for l in self.limits],
            "consume": dict(self.consume),
            "cascade": self.cascade,
            "body": self.body,
            "adjust": dict(self.adjust),
            "rejects": self.rejects,
            "exhausts": self.exhausts,
            "entities": self.entities,
            "revisit": self.revisit,
            "processes": list(self.processes),
            "systems": list(self.systems),
            "our_options": dict(self.our_options),
        }


# Rates far above what one machine can drive, so that only the rejection scenario ever rejects.
RPM = LimitSpec("rpm", "minute", 10_000_000)
TPM = LimitSpec("tpm", "minute", 1_000_000_000)
RPD = LimitSpec("rpd", "day", 1_000_000_000)

# A per-second limit below what one client drives on the embedded server (100-300 acquires a second
# here), with a small burst: the bucket runs dry within the first second of a cell and stays near empty,
# so the check of what was admitted against capacity + refill bites. `--hot-limit` sets another.
HOT = LimitSpec("rps", "second", 40, burst=10)


def hot(name: str, title: str, *, cascade: bool = False, limit: LimitSpec = HOT,
        our_options: dict[str, Any] | None = None) -> Scenario:
    """One key driven as fast as the machine allows, from 1 and from 4 processes. The Redis-backed
    limiter has no cascade, so it runs the single-limit form only."""
    return Scenario(name, title, (limit,), {limit.name: 1}, cascade=cascade, exhausts=True, processes=(1, 4),
                    systems=("ours", "published") if cascade else SYSTEMS, our_options=dict(our_options or {}))


COLD = LimitSpec("rpm", "minute", 1000)  # far above one acquire per entity per lap
# The configuration cache of the cold scenarios: 1 s instead of 10, so that a lap outlasts it.
SHORT_CACHE = {"config_cache_seconds": 1.0}

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
    hot("hot", "hot key"),
    hot("hot-cascade", "hot key, cascade", cascade=True),
    # With our opt-in token reservoirs, on a limit near what that path drives (2,000/s: a reserve is at
    # most a tenth of the capacity, so the 10 of `hot` would hold 1 token).
    hot("hot-reservoir", "hot key, reservoirs", limit=LimitSpec("rps", "second", 2000),
        our_options={"reservoir_seconds": 0.2}),
    # The same under cascade: the key's bucket and its parent's, both reserved (DESIGN 14).
    hot("hot-cascade-reservoir", "hot key, cascade, reservoirs", cascade=True, limit=LimitSpec("rps", "second", 2000),
        our_options={"reservoir_seconds": 0.2}),
    # Every acquire on an entity this client has never seen (20,000 in rotation, each with limits of its
    # own, written by a batch in the prepare step). Ours only: the published package would need 20,000
    # set_limits calls.
    Scenario("cold", "cold entities, never seen", (COLD,), {"rpm": 1}, entities=20_000, systems=("ours",),
             our_options=SHORT_CACHE),
    # Every acquire on an entity this client last saw a lap ago, longer than its configuration cache
    # (a lap of a few hundred entities takes seconds on the emulator): the multi-tenant API's key that
    # comes back.
    Scenario("cold-revisit", "cold entities, seen a lap ago", (COLD,), {"rpm": 1}, entities=1_200, revisit=True,
             systems=("ours",), our_options=SHORT_CACHE),
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
            if not scenario.refusals_expected:
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
            if not scenario.refusals_expected:
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
        exhausts=data.get("exhausts", False),
        entities=data.get("entities", 0),
        revisit=data.get("revisit", False),
        processes=tuple(data.get("processes", ())),
        systems=tuple(data.get("systems", ("ours", "published"))),
        our_options=dict(data.get("our_options", {})),
    )
