"""`python -m zae_limiter.benchmark` (what `make bench` runs). Exit codes: 0 ok, 1 failed, 2 usage."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import subprocess
import sys
import uuid
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from rich.console import Console

from . import engine, published, report, rounds, versus_redis
from .spec import APIS, BY_NAME, CONCURRENCIES, HOT, LimitSpec

DEFAULT_OUTPUT = "bench-results.json"
FULL = {"seconds": 4.0, "warmup": 20, "warmup_seconds": 1.0, "capacity_iterations": 20}
QUICK = {"seconds": 1.0, "warmup": 10, "warmup_seconds": 0.3, "capacity_iterations": 5}


def _names(values: list[str] | None, known: Sequence[str], what: str, parser: argparse.ArgumentParser) -> list[str]:
    if not values:
        return list(known)
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(known)}")
    return [name for name in known if name in names]  # in the table's order, once each


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m zae_limiter.benchmark",
        description="Measure the rate limiter's hot path on the embedded DynamoDB: requests, consumed capacity, "
        "client CPU, throughput and latency per acquire, sync and async. See docs/benchmarks.md.",
    )
    parser.add_argument("--seconds", type=float, help=f"measured seconds per cell (default {FULL['seconds']:g}, "
                        f"--quick {QUICK['seconds']:g})")
    parser.add_argument("--iterations", type=int, help="acquires per cell; with --seconds, whichever ends first")
    parser.add_argument("--scenario", action="append", metavar="NAME",
                        help=f"only these scenarios (repeat or comma-separate): {', '.join(BY_NAME)}")
    parser.add_argument("--api", action="append", metavar="API", help="only sync or async")
    parser.add_argument("--concurrency", action="append", metavar="N",
                        help=f"threads (sync) or tasks (async) per cell (default {','.join(map(str, CONCURRENCIES))})")
    parser.add_argument("--processes", action="append", metavar="N",
                        help="also run each cell from N processes at once on the same bucket (e.g. 1,4; default 1): "
                        "what contention between clients costs. The hot scenarios run 1 and 4 whatever this says")
    parser.add_argument("--rounds", type=int, default=engine.Settings.rounds, metavar="N",
                        help="with more than one system: slices per cell, the systems taking turns (default "
                        f"{engine.Settings.rounds})")
    parser.add_argument("--cold-entities", type=int, metavar="N",
                        help="entities in the cold scenario's rotation (default 20000)")
    parser.add_argument("--hot-limit", metavar="RATE[:BURST]",
                        help=f"the hot scenarios' per-second limit (default {HOT.rate}:{HOT.capacity}); pick one near "
                        "what the machine drives, so that the bucket runs dry")
    parser.add_argument("--quick", action="store_true", help="a short run: 1 s per cell, smaller warm-up")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help=f"JSON results file (default {DEFAULT_OUTPUT})")
    parser.add_argument("--endpoint-url", help="an emulator that is already running (default: start the embedded one)")
    parser.add_argument("--boto3-hot-path", action="store_true",
                        help="send our hot-path requests through boto3 (lean_hot_path=False): what the lean data "
                        "plane saves")
    parser.add_argument("--compare-published", action="store_true",
                        help="also run the published zae-limiter (0.17.*, else the latest) in its own venv")
    parser.add_argument("--published-venv", type=Path, default=published.DEFAULT_VENV,
                        help=f"where that venv lives (default {published.DEFAULT_VENV})")
    parser.add_argument("--compare-redis", action="store_true",
                        help="also run a Redis-backed limiter (throttled-py's GCRA) on a local redis-server, on the "
                        f"hot scenario; needs the {versus_redis.EXTRA} extra and the redis-server package "
                        "(make bench installs both when asked)")
    return parser


def settings_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> engine.Settings:
    base = QUICK if args.quick else FULL
    seconds = args.seconds
    if seconds is None and args.iterations is None:
        seconds = base["seconds"]
    if seconds is not None and seconds <= 0:
        parser.error("--seconds must be positive")
    if args.iterations is not None and args.iterations <= 0:
        parser.error("--iterations must be positive")
    concurrencies = list(CONCURRENCIES)
    if args.concurrency:
        try:
            concurrencies = sorted({int(n) for value in args.concurrency for n in value.split(",") if n.strip()})
        except ValueError:
            parser.error("--concurrency takes whole numbers, e.g. 1,32")
        if not concurrencies or not all(1 <= n <= 1024 for n in concurrencies):
            parser.error("--concurrency takes whole numbers from 1 to 1024")
    processes = [1]
    if args.processes:
        try:
            processes = sorted({int(n) for value in args.processes for n in value.split(",") if n.strip()})
        except ValueError:
            parser.error("--processes takes whole numbers, e.g. 1,4")
        if not processes or not all(1 <= n <= 64 for n in processes):
            parser.error("--processes takes whole numbers from 1 to 64")
    if args.rounds < 1 or args.rounds > 100:
        parser.error("--rounds takes a whole number from 1 to 100")
    if args.cold_entities is not None and args.cold_entities < 2:
        parser.error("--cold-entities takes a whole number of at least 2")
    return engine.Settings(
        rounds=args.rounds,
        processes=tuple(processes),
        seconds=seconds,
        iterations=args.iterations,
        warmup=base["warmup"],
        warmup_seconds=base["warmup_seconds"],
        capacity_iterations=base["capacity_iterations"],
        concurrencies=tuple(concurrencies),
    )


def hot_limit(text: str | None, parser: argparse.ArgumentParser) -> LimitSpec | None:
    """--hot-limit RATE[:BURST], whole numbers a second."""
    if text is None:
        return None
    rate, _, burst = text.partition(":")
    try:
        limit = LimitSpec(HOT.name, "second", int(rate), int(burst) if burst else None)
    except ValueError:
        parser.error(f"--hot-limit takes RATE or RATE:BURST in whole numbers a second, e.g. 40:10; got {text!r}")
    if limit.rate < 1 or limit.capacity < 1:
        parser.error(f"--hot-limit takes a rate and a burst of at least 1; got {text!r}")
    return limit


def chosen_scenarios(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list:
    """The scenarios asked for, with --cold-entities and --hot-limit applied."""
    scenarios = [BY_NAME[name] for name in _names(args.scenario, list(BY_NAME), "scenario", parser)]
    limit = hot_limit(args.hot_limit, parser)
    out = []
    for scenario in scenarios:
        if scenario.entities and args.cold_entities is not None:
            scenario = dataclasses.replace(scenario, entities=args.cold_entities)
        if scenario.exhausts and limit is not None:
            scenario = dataclasses.replace(scenario, limits=(limit,), consume={limit.name: 1})
        out.append(scenario)
    return out


def _git_commit() -> str | None:
    try:
        # "+dirty" when the checkout has changes: the figures are then not those of the commit alone.
        done = subprocess.run(["git", "describe", "--always", "--dirty=+dirty", "--abbrev=7"],
                              capture_output=True, text=True, cwd=Path(__file__).resolve().parent, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def _library_versions() -> dict:
    import botocore

    from .. import __version__

    return {"version": __version__, "git_commit": _git_commit(), "botocore": botocore.__version__}


def _systems(stack: ExitStack, args: argparse.Namespace, endpoint_url: str, prefix: str, log: Any) -> dict[str, Any]:
    """The systems this run measures, by name, each alive until `stack` closes."""
    from .cells import LocalSystem
    from .ours import OursTarget

    options = {"lean_hot_path": False} if args.boto3_hot_path else None
    systems: dict[str, Any] = {"ours": LocalSystem(
        lambda scenario, api: OursTarget(scenario, endpoint_url, f"{prefix}-ours-{scenario.name}-{api}", limiter_options=options))}
    if args.compare_published:
        remote = published.RemoteSystem(args.published_python, endpoint_url, f"{prefix}-pub")
        stack.callback(remote.close)
        systems["published"] = remote
    if args.compare_redis:
        url = stack.enter_context(versus_redis.redis_server())
        log(f"redis-server on {url}")
        systems["redis"] = LocalSystem(
            lambda scenario, api: versus_redis.RedisTarget(scenario, url, f"{prefix}:{scenario.name}:{api}"))
    return systems


def measure_all(systems: dict[str, Any], scenarios: list, apis: list[str], settings: engine.Settings,
                log: Any) -> dict[str, list[dict]]:
    """Every scenario through every API on the systems it runs on, interleaved (rounds.measure)."""
    results: dict[str, list[dict]] = {name: [] for name in systems}
    for scenario in scenarios:
        chosen = {name: system for name, system in systems.items() if name in scenario.systems}
        for api in apis:
            for name, result in rounds.measure(chosen, scenario, api, settings, log).items():
                results[name].append(result)
    return results


def _run(args: argparse.Namespace, settings: Any, scenarios: list, apis: list[str], log: Callable[[str], None]) -> tuple:
    """Measure every system asked for on one server; their rows: ours, the published package's, Redis's."""
    from ..local import LocalDynamoDB

    theirs = redis = None
    # First: a missing package or server should cost seconds, not the whole run.
    if args.compare_redis:
        versus_redis.check_client()
    requirement = None
    if args.compare_published:
        args.published_python, version, requirement = published.ensure_published(args.published_venv, log)
        log(f"published zae-limiter {version} ({requirement}) in {args.published_venv}")
    with ExitStack() as stack:
        endpoint_url = args.endpoint_url or stack.enter_context(LocalDynamoDB())
        systems = _systems(stack, args, endpoint_url, f"zlb-{uuid.uuid4().hex[:8]}", log)
        results = measure_all(systems, scenarios, apis, settings, log)
        if "published" in systems:
            found = systems["published"].versions()
            theirs = {"version": found["version"], "requirement": requirement, "botocore": found["botocore"],
                      "rows": report.rows(results["published"], "published")}
    ours = {**_library_versions(), "rows": report.rows(results["ours"], "ours")}
    if "redis" in results:
        redis = {"title": versus_redis.describe(), "rows": report.rows(results["redis"], "redis")}
    return ours, theirs, redis


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    settings = settings_from(args, parser)
    scenarios = chosen_scenarios(args, parser)
    apis = _names(args.api, list(APIS), "API", parser)
    err = Console(stderr=True, highlight=False)
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 220)

    def log(message: str) -> None:
        err.print(message, style="dim", markup=False)

    def fail(message: str) -> None:  # as written: no markup (an extra's name is in brackets), no wrapping
        err.print(message, style="red", markup=False, soft_wrap=True)

    from ..core.errors import ZaeLimiterError

    started = datetime.now(timezone.utc)
    try:
        ours, theirs, redis = _run(args, settings, scenarios, apis, log)
    except versus_redis.RedisUnavailable as error:
        fail(str(error))
        return 1
    except published.PublishedUnavailable as error:
        fail(f"--compare-published: {error}")
        return 1
    except ZaeLimiterError as error:
        fail(f"benchmark failed: {error}")
        return 1
    doc = report.document(
        command=shlex.join(["python", "-m", "zae_limiter.benchmark", *argv]),
        started=started,
        settings={**settings.to_dict(), "scenarios": [s.name for s in scenarios], "apis": apis,
                  "hot_path": "boto3" if args.boto3_hot_path else "lean",
                  "scenario_specs": [s.to_dict() for s in scenarios]},
        endpoint=args.endpoint_url or "embedded moto server (zae_limiter.local.LocalDynamoDB)",
        ours=ours,
        published=theirs,
        redis=redis,
    )
    report.print_report(out, doc)
    Path(args.output).write_text(json.dumps(doc, indent=2) + "\n")
    err.print(f"wrote {args.output}")
    return 0

