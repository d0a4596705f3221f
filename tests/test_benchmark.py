"""The benchmark command: its deterministic figures (requests per warm acquire, the AWS WCU estimate),
its JSON document and its exit codes. Nothing here asserts a time."""

from __future__ import annotations

import ast
import dataclasses
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from zae_limiter.benchmark import cli, engine, published, report, rounds, sizing, versus_redis
from zae_limiter.benchmark.ours import count_requests, rotation, rotation_entity
from zae_limiter.benchmark.spec import BY_NAME, SCENARIOS, LimitSpec, scenario_from_dict

BENCHMARK = Path(cli.__file__).parent
N = 4

# What one warm acquire of each scenario asks of DynamoDB (per acquire, at concurrency 1). By default a
# refusal is one failed conditional write; with the opt-in local rejection, a bucket this client has seen
# exhausted is refused with no request at all.
EXPECTED = {
    "single": {"UpdateItem": 1},
    "three": {"UpdateItem": 1},
    "cascade": {"TransactWriteItems": 1},
    "rejection": {"UpdateItem": 1},
    "rejection-cached": {},
    "adjust": {"UpdateItem": 2},
    "refund": {"UpdateItem": 2},
    # The hot key's first acquires are within its burst of 10: admitted, one write each.
    "hot": {"UpdateItem": 1},
    "hot-cascade": {"TransactWriteItems": 1},
    # At most one write per acquire: the reserve admits the others locally once the rate builds up (a
    # few acquires of a test do not always get there).
    "hot-reservoir": {"UpdateItem": 1},
    # Under cascade: at most one transaction per acquire, and the UpdateItems that give a reserve back
    # or count the usage admitted locally (the limiter's background thread, per bucket).
    "hot-cascade-reservoir": {"TransactWriteItems": 1, "UpdateItem": 1},
    # An entity this client has never seen: its stored limits must be read (BatchGetItem), then the write.
    "cold": {"BatchGetItem": 1, "UpdateItem": 1},
    # An entity it saw a lap ago, past its configuration cache, whose bucket exists: the write alone,
    # conditioned on the configuration's version (DESIGN.md §11: a cold entity costs one request).
    "cold-revisit": {"UpdateItem": 1},
}
AT_MOST = {"hot-reservoir", "hot-cascade-reservoir"}  # counts that are a bound, not exact
# Scenarios whose short configuration cache (the one they measure) also expires the resource's defaults,
# which every entity shares: one acquire reads them again (one BatchGetItem) once per cache period. The
# warm-up lap ends by waiting out the cache (OursTarget.after_lap), so the measured acquires always
# revisit expired entries, and the first of them also reads the shared defaults.
SHARED_REFRESH = {"cold-revisit"}
# Rotations small enough for a test: 20 entities per API, none seen twice (cold), or a lap of 30 in the
# warm-up before the measured acquires come back to its first entities (cold-revisit).
SMALL = {"cold": {"entities": 40}, "cold-revisit": {"entities": 60}}


def test_every_scenario_has_an_expected_count():
    assert set(EXPECTED) == {scenario.name for scenario in SCENARIOS}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_requests_per_warm_acquire(endpoint_url, name):
    scenario = dataclasses.replace(BY_NAME[name], **SMALL.get(name, {}))
    cells = count_requests(scenario, endpoint_url, f"tb-{uuid.uuid4().hex[:10]}", iterations=N)
    assert set(cells) == {"sync", "async"}
    for api, cell in cells.items():
        assert cell["errors"] == 0, (api, cell["first_error"])
        assert cell["acquires"] == N, api
        if name in AT_MOST:
            assert set(cell["requests"]) <= set(EXPECTED[name]), api
            assert all(cell["requests"][op] <= count * N for op, count in EXPECTED[name].items() if op in cell["requests"]), api
        elif name in SHARED_REFRESH:
            requests = dict(cell["requests"])
            refreshes = requests.pop("BatchGetItem", 0)
            assert requests == {op: count * N for op, count in EXPECTED[name].items()}, api
            periods = cell["span_seconds"] / scenario.our_options["config_cache_seconds"]
            assert refreshes <= 1 + int(periods), (api, refreshes, cell["span_seconds"])
        else:
            assert cell["requests"] == {op: count * N for op, count in EXPECTED[name].items()}, api
        assert cell["rejected"] == (N if BY_NAME[name].rejects else 0), api


def test_without_the_local_rejection_a_refusal_is_one_failed_write(endpoint_url):
    """Decided from the failed conditional write's ALL_OLD item, with no second request to read it."""
    cells = count_requests(BY_NAME["rejection-cached"], endpoint_url, f"tb-{uuid.uuid4().hex[:10]}", iterations=N,
                           limiter_options={"reject_cache_seconds": 0})
    for api, cell in cells.items():
        assert (cell["requests"], cell["rejected"], cell["errors"]) == ({"UpdateItem": N}, N, 0), api


# -- the AWS estimate --------------------------------------------------------------------------------
BUCKET = {
    "PK": {"S": "ENTITY#k"},  # 2 + 8
    "SK": {"S": "#BUCKET#gpt"},  # 2 + 11
    "b_rpm": {"N": "1800000000000000000"},  # 5 + (2 significant digits: 1 byte + 1)
    "c_rpm": {"N": "1000"},  # 5 + 2
    "n": {"N": "42"},  # 1 + 2
}


def test_item_size_follows_dynamodb_rules():
    assert sizing.item_size(BUCKET) == 10 + 13 + 7 + 7 + 3
    assert sizing.value_size({"N": "123.450"}) == 4  # 12345: 5 significant digits -> 3 bytes + 1
    assert sizing.value_size({"N": "-0.001"}) == 2
    assert sizing.value_size({"M": {"a": {"N": "1"}, "bb": {"S": "xyz"}}}) == 3 + (1 + 1 + 2) + (1 + 2 + 3)
    assert sizing.value_size({"L": [{"BOOL": True}, {"NULL": True}]}) == 3 + 2 + 2
    assert sizing.value_size({"SS": ["ab", "c"]}) == 3
    assert sizing.value_size({"B": "AAEC"}) == 3  # base64 of three bytes


def test_write_units_per_started_kilobyte():
    assert sizing.write_units(40) == 1
    assert sizing.write_units(1024) == 1
    assert sizing.write_units(1025) == 2
    big = {**BUCKET, "pad": {"S": "x" * 1500}}
    assert sizing.write_units(sizing.item_size(big)) == 2


def test_wcu_estimate_charges_transactions_twice_per_item():
    parent = {**BUCKET, "PK": {"S": "ENTITY#p"}}
    assert sizing.estimate_write_units({"UpdateItem": 3}, [BUCKET]) == 3
    assert sizing.estimate_write_units({"TransactWriteItems": 3}, [BUCKET, parent]) == 3 * 2 * 2
    assert sizing.estimate_write_units({"UpdateItem": 2, "BatchGetItem": 5}, [BUCKET]) == 2  # reads: not WCU
    big = {**BUCKET, "pad": {"S": "x" * 1500}}
    assert sizing.estimate_write_units({"UpdateItem": 1}, [big]) == 2


# -- the engine, without a server ----------------------------------------------------------------------
def test_threads_run_exactly_the_iterations_and_count_refusals_and_errors():
    calls = []

    def op():
        calls.append(1)
        if len(calls) % 3 == 0:
            raise RuntimeError("boom")
        return len(calls) % 3 == 1  # refused

    result = engine.drive_threads(op, 4, None, 30)
    assert result["acquires"] == len(calls) == 30
    assert result["errors"] == 10 and result["first_error"] == "RuntimeError: boom"
    assert result["rejected"] == 10


def test_tasks_run_exactly_the_iterations():
    import asyncio

    async def op():
        await asyncio.sleep(0)
        return False

    stretch = asyncio.run(engine.drive_tasks(op, 8, None, 50))
    assert stretch["acquires"] == len(stretch["latencies"]) == 50
    assert stretch["first_start"] <= stretch["last_end"]
    result = engine.summary(stretch, 8)
    assert result["acquires"] == 50 and result["rejected"] == 0 and result["errors"] == 0
    assert result["cpu_us_per_acquire"] is not None and result["latency_ms"]["p99"] >= result["latency_ms"]["p50"]


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 101)]
    assert engine.percentile(values, 50) == 50.0
    assert engine.percentile(values, 99) == 99.0
    assert engine.percentile([7.0], 99) == 7.0
    assert engine.percentile([], 50) == 0.0


def test_changed_items_are_the_new_and_the_modified():
    old = [{"PK": {"S": "a"}, "SK": {"S": "1"}, "v": {"N": "1"}}, {"PK": {"S": "b"}, "SK": {"S": "1"}}]
    new = [{"PK": {"S": "a"}, "SK": {"S": "1"}, "v": {"N": "2"}}, old[1], {"PK": {"S": "c"}, "SK": {"S": "1"}}]
    assert engine.changed_items(old, new) == [new[0], new[2]]


def test_ratios_say_above_one_when_ours_is_better():
    ours = {"scenario": "single", "api": "sync", "concurrency": 1, "cpu_us_per_acquire": 100.0,
            "requests_per_acquire": 1.0, "wcu_per_acquire_estimate": 1.0, "acquires_per_second": 300.0,
            "p50_ms": 2.0, "p99_ms": 4.0}
    theirs = {**ours, "cpu_us_per_acquire": 250.0, "requests_per_acquire": 0.0, "acquires_per_second": 100.0,
              "p50_ms": 3.0}
    (ratio,) = report.ratios([ours], [theirs])
    assert ratio["cpu_theirs_over_ours"] == 2.5
    assert ratio["throughput_ours_over_theirs"] == 3.0
    assert ratio["p50_theirs_over_ours"] == 1.5
    assert ratio["requests_theirs_over_ours"] == 0.0
    assert report.ratios([ours], [{**theirs, "concurrency": 32}]) == []
    # ours refused locally, with a refresh now and then: a ratio of two near-zero rates is not given
    (rare,) = report.ratios([{**ours, "requests_per_acquire": 0.0002}], [theirs])
    assert rare["requests_theirs_over_ours"] is None and rare["cpu_theirs_over_ours"] == 2.5


def test_scenarios_travel_to_the_runner_unchanged():
    for scenario in SCENARIOS:
        assert scenario_from_dict(json.loads(json.dumps(scenario.to_dict()))) == scenario


# -- what the published package's runner can load --------------------------------------------------------
SHARED = ("spec", "engine", "cells", "rounds")


@pytest.mark.parametrize("module", SHARED)
def test_shared_modules_import_only_the_standard_library_and_each_other(module):
    """The runner loads this folder in the published package's venv, where `zae_limiter` is not ours."""
    tree = ast.parse((BENCHMARK / f"{module}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            assert node.level == 1 and node.module in (None, *SHARED), f"{module}: imports .{node.module}"
            if node.module is None:
                assert {alias.name for alias in node.names} <= set(SHARED), f"{module}: imports from ."
            continue
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            root = name.split(".")[0]
            assert root == "__future__" or root in sys.stdlib_module_names, f"{module} imports {name}"


# What the runner may take from the published package: 0.17's public names and its own modules, as its
# site-packages holds them (zae_limiter/schema.py there; our layout's zae_limiter.core does not exist).
PUBLISHED_MODULES = {"zae_limiter", "zae_limiter.schema", "zae_limiter.exceptions", "zae_limiter.models"}


def test_the_runner_imports_only_what_the_published_package_has():
    tree = ast.parse(published.RUNNER.read_text())
    taken = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zae_limiter"):
            taken.add(node.module)
            taken.update(f"{node.module}.{alias.name}" for alias in node.names if alias.name == "schema")
        elif isinstance(node, ast.Import):
            taken.update(alias.name for alias in node.names if alias.name.startswith("zae_limiter"))
    assert "zae_limiter" in taken
    assert {name for name in taken if name != "zae_limiter.schema"} <= PUBLISHED_MODULES, taken


def test_runner_starts_in_isolated_mode(tmp_path):
    done = subprocess.run([sys.executable, "-I", str(published.RUNNER), "--help"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--serve" in done.stdout


def test_runner_answers_each_command_and_reports_a_failed_one():
    """The long-lived runner, driven line by line as the parent drives it (here on our own python, where
    `zae_limiter` is ours: `versions` works, and `prepare` fails on the published package's API, which
    must come back as an answer naming the command, not end the runner)."""
    remote = published.RemoteSystem(Path(sys.executable), "http://127.0.0.1:9", "tb")
    try:
        from zae_limiter import __version__

        assert remote.versions()["version"] == __version__
        with pytest.raises(published.PublishedUnavailable, match="prepare: "):
            remote.prepare(BY_NAME["single"], "sync", 1)
        assert remote.versions()["version"] == __version__  # still serving
    finally:
        remote.close()
    assert remote.process.returncode == 0


# -- interleaving -------------------------------------------------------------------------------------------
class _RecordingSystem:
    """A system whose acquires do nothing, recording every step in one shared log."""

    def __init__(self, name, log):
        self.name, self.log = name, log

    def usage(self):
        return None

    def open_cell(self, index, concurrency, processes, settings):
        system = self

        class Fake:
            def open(self):
                system.log.append(("open", system.name))
                return engine.drive_threads(lambda: False, concurrency, None, 1)

            def run(self, seconds, iterations):
                system.log.append(("run", system.name, iterations))
                return engine.drive_threads(lambda: False, concurrency, seconds, iterations)

            def close(self):
                system.log.append(("close", system.name))

        return Fake()


def test_systems_take_turns_within_a_cell_each_first_as_often_as_last():
    log: list = []
    systems = {"ours": _RecordingSystem("ours", log), "theirs": _RecordingSystem("theirs", log)}
    settings = engine.Settings(seconds=None, iterations=10, rounds=4)
    cells = rounds.run_cell(systems, 0, 2, 1, settings)
    a, b = "ours", "theirs"
    assert log == [
        ("open", a), ("open", b),
        ("run", a, 3), ("run", b, 3), ("run", b, 3), ("run", a, 3),
        ("run", a, 2), ("run", b, 2), ("run", b, 2), ("run", a, 2),
        ("close", a), ("close", b),
    ]
    for name in systems:  # the slices add up to the cell
        assert (cells[name]["acquires"], cells[name]["rounds"], cells[name]["errors"]) == (10, 4, 0), name
        assert len(cells[name]["slice_spans_seconds"]) == 4


def test_a_lone_system_runs_its_cell_in_one_slice():
    log: list = []
    cells = rounds.run_cell({"ours": _RecordingSystem("ours", log)}, 0, 1, 1,
                            engine.Settings(seconds=None, iterations=7, rounds=4))
    assert log == [("open", "ours"), ("run", "ours", 7), ("close", "ours")]
    assert cells["ours"]["acquires"] == 7


def test_slice_budgets_split_the_time_and_the_count():
    assert rounds.slice_budgets(2.0, None, 4) == [(0.5, None)] * 4
    assert rounds.slice_budgets(None, 3, 4) == [(None, 1)] * 3  # a slice with nothing to do is left out
    assert rounds.slice_budgets(1.0, 9, 2) == [(0.5, 5), (0.5, 4)]
    assert rounds.round_order(["a", "b", "c"], 3) == [["a", "b", "c"], ["c", "b", "a"], ["a", "b", "c"]]


def test_sequential_and_concurrent_stretches_add_up():
    def stretch(acquires, cpu, wall, start, end):
        return {"acquires": acquires, "rejected": 1, "errors": 0, "first_error": None, "cpu_seconds": cpu,
                "wall_seconds": wall, "first_start": start, "last_end": end, "latencies": [0.001] * acquires,
                "counts": {"requests": {"UpdateItem": acquires}, "read_units": 0.0, "write_units": 0.5}}

    processes = engine.concurrent([stretch(3, 0.1, 1.0, 100.0, 101.0), stretch(2, 0.2, 1.5, 100.2, 101.5)])
    assert (processes["acquires"], processes["wall_seconds"], processes["spans"]) == (5, 1.5, [1.5])
    assert processes["cpu_seconds"] == pytest.approx(0.3)
    cell = engine.summary(engine.sequential([processes, stretch(4, 0.1, 0.5, 110.0, 110.5)]), 1, 2)
    assert cell["acquires"] == 9 and cell["rejected"] == 3 and cell["wall_seconds"] == 2.0
    assert cell["span_seconds"] == pytest.approx(10.5) and cell["slice_spans_seconds"] == [1.5, 0.5]
    assert cell["requests"] == {"UpdateItem": 9} and cell["requests_per_acquire"] == 1.0
    assert cell["write_units"] == 1.5 and cell["processes"] == 2


# -- the hot scenario's check ---------------------------------------------------------------------------------
HOT_LIMIT = LimitSpec("rps", "second", 40, burst=10)  # a full bucket holds 10; 40 more each second


def test_over_admission_is_what_was_admitted_past_capacity_plus_refill():
    fits = report.over_admission([HOT_LIMIT], {"rps": 1}, 50, 1.0)  # 10 + 40 x 1 s
    assert (fits["admitted"], fits["allowed"], fits["over"]) == (50, 50.0, 0.0)
    over = report.over_admission([HOT_LIMIT], {"rps": 1}, 53, 1.0)
    assert over["over"] == 3.0
    assert report.over_admission([HOT_LIMIT], {"rps": 2}, 30, 1.0)["over"] == 10.0  # 60 taken of 50
    assert report.over_admission([HOT_LIMIT], {"rps": 1}, 10, 0.0)["over"] == 0.0  # a full bucket, no time


def test_over_admission_of_slices_with_gaps_counts_a_bucket_that_idles_as_full_only():
    # Two 0.25 s slices 10 s apart: over the whole span 10 + 40 x 10.5 = 430 could pass, but a bucket
    # that idles holds at most its capacity, so at most 2 x (10 + 40 x 0.25) = 40 can.
    figure = report.over_admission([HOT_LIMIT], {"rps": 1}, 41, 10.5, [0.25, 0.25])
    assert (figure["allowed"], figure["over"]) == (40.0, 1.0)
    # Back-to-back slices: the whole span is the smaller bound.
    assert report.over_admission([HOT_LIMIT], {"rps": 1}, 30, 0.5, [0.25, 0.25])["allowed"] == 30.0


def test_over_admission_reports_the_limit_that_came_closest():
    wide = LimitSpec("tpm", "minute", 6000)  # 6000 + 100/s
    figure = report.over_admission([wide, HOT_LIMIT], {"rps": 1, "tpm": 100}, 50, 1.0)
    assert figure["limit"] == "rps"


def test_usage_check_compares_the_counters_with_the_admissions_warm_up_included():
    cell = {"warmup": {"acquires": 10, "rejected": 0, "errors": 0}, "acquires": 100, "rejected": 33, "errors": 0,
            "usage_moved": {"bench-key rps": 77_000, "bench-project rps": 77_000}}
    hot = BY_NAME["hot"]
    check = report.usage_check(hot, cell)
    assert check["equal"] and check["admitted_acquires"] == 77
    short = report.usage_check(hot, {**cell, "usage_moved": {"bench-key rps": 76_000}})
    assert not short["equal"] and short["counted"] == {"bench-key rps": 76.0}


def test_usage_check_counts_each_admission_net_of_its_adjust_or_refund():
    """An adjusted lease consumes its take plus the adjust; a refunded one nothing."""
    cell = {"warmup": {"acquires": 2, "rejected": 0, "errors": 0}, "acquires": 8, "rejected": 0, "errors": 0}
    adjust, refund = BY_NAME["adjust"], BY_NAME["refund"]
    per_acquire = adjust.consume["tpm"] + adjust.adjust["tpm"]
    check = report.usage_check(adjust, {**cell, "usage_moved": {"bench-key tpm": 10 * per_acquire * 1000, "bench-key rpm": 10_000}})
    assert check["equal"], check
    check = report.usage_check(refund, {**cell, "usage_moved": {"bench-key tpm": 0, "bench-key rpm": 0}})
    assert check["equal"], check


def test_hot_rows_on_a_tiny_run(endpoint_url, tmp_path):
    """The hot scenario runs from 1 and from 4 processes, whatever --processes says, and every row
    carries the over-admission figure (0) and the usage counters equal to the admissions."""
    output = tmp_path / "hot.json"
    code = cli.main(["--endpoint-url", endpoint_url, "--scenario", "hot", "--api", "sync", "--concurrency", "1",
                     "--iterations", "24", "--quick", "--output", str(output)])
    assert code == 0
    rows = json.loads(output.read_text())["ours"]["rows"]
    assert [row["processes"] for row in rows] == [1, 4]
    for row in rows:
        assert row["acquires"] == 24, row["processes"]
        assert set(row["requests"]) == {"UpdateItem"}
        figure = row["over_admission"]
        assert figure["limit"] == "rps" and figure["over"] == 0.0
        assert figure["admitted"] == row["acquires"] - row["rejected"] - row["errors"]
        assert row["usage"]["equal"], row["usage"]
    assert rows[0]["errors"] == 0
    # From 4 processes on a near-full bucket a write may meet a changed bucket each time: nothing taken.
    assert rows[1]["errors"] == 0 or rows[1]["first_error"].startswith("BucketContention")


def test_hot_limit_option_sets_the_hot_scenarios_limit(tmp_path):
    parser = cli.build_parser()
    args = parser.parse_args(["--scenario", "hot,single", "--hot-limit", "500:50"])
    hot, single = sorted(cli.chosen_scenarios(args, parser), key=lambda s: s.name)
    assert hot.limits == (LimitSpec("rps", "second", 500, 50),) and hot.consume == {"rps": 1}
    assert single == BY_NAME["single"]
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--hot-limit", "fast"])
    assert exit_.value.code == 2


# -- the cold scenario's rotation ---------------------------------------------------------------------------
def test_rotation_segments_and_parts_partition_the_entities():
    taken = {}
    for segment in range(3):
        for part in range(2):
            draw = rotation(12, (segment, 3), (part, 2))
            taken[segment, part] = [draw() for _ in range(3)]
    assert taken[1, 0] == [rotation_entity(n) for n in (4, 6, 4)]  # segment 1 of 3: entities 4-7, wrapping
    assert taken[1, 1] == [rotation_entity(n) for n in (5, 7, 5)]
    firsts = [names[:2] for names in taken.values()]
    assert sorted(name for pair in firsts for name in pair) == [rotation_entity(n) for n in range(12)]


def test_a_revisiting_target_warms_up_with_one_lap_of_its_share():
    from zae_limiter.benchmark.ours import OursTarget

    target = OursTarget(BY_NAME["cold-revisit"], "http://127.0.0.1:9", "t")
    target.segment, target.part = (1, 3), (2, 4)  # entities 400-799, every 4th from 402: 100 of them
    assert target.warmup_lap() == 100
    assert OursTarget(BY_NAME["cold"], "http://127.0.0.1:9", "t").warmup_lap() is None


def test_cold_entities_option():
    parser = cli.build_parser()
    cold, revisit = cli.chosen_scenarios(
        parser.parse_args(["--scenario", "cold,cold-revisit", "--cold-entities", "300"]), parser)
    assert cold.entities == revisit.entities == 300 and revisit.revisit and not cold.revisit
    with pytest.raises(SystemExit):
        cli.main(["--cold-entities", "1"])


# -- the Redis-backed comparison ---------------------------------------------------------------------------
def test_compare_redis_without_its_extra_exits_1_in_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "throttled", None)  # `import throttled` raises ImportError
    output = tmp_path / "x.json"
    code = cli.main(["--compare-redis", "--endpoint-url", "http://127.0.0.1:9", "--output", str(output)])
    assert code == 1
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "bench-redis" in message
    assert not output.exists()


def test_compare_redis_without_the_server_says_so(monkeypatch):
    monkeypatch.setattr(versus_redis.shutil, "which", lambda name: None)
    with pytest.raises(versus_redis.RedisUnavailable, match="redis-server is not installed"):
        with versus_redis.redis_server():
            pass


REDIS_MISSING = (
    "redis-server is not installed" if shutil.which("redis-server") is None
    else None if __import__("importlib").util.find_spec("throttled") else "the bench-redis extra is not installed"
)


@pytest.mark.skipif(REDIS_MISSING is not None, reason=f"Redis comparison not runnable here: {REDIS_MISSING}")
def test_redis_rows_on_a_tiny_run(endpoint_url, tmp_path):
    output = tmp_path / "redis.json"
    code = cli.main(["--endpoint-url", endpoint_url, "--scenario", "hot", "--api", "sync,async", "--concurrency", "1",
                     "--iterations", "40", "--quick", "--compare-redis", "--rounds", "2", "--output", str(output)])
    assert code == 0
    doc = json.loads(output.read_text())
    rows = doc["redis"]["rows"]
    assert [(row["api"], row["processes"]) for row in rows] == [("sync", 1), ("sync", 4), ("async", 1), ("async", 4)]
    for row in rows:
        assert (row["acquires"], row["errors"], row["rounds"]) == (40, 0, 2)
        assert row["requests"] == {"EVALSHA": 40} and row["wcu_per_acquire_estimate"] is None
        assert row["over_admission"]["over"] == 0.0
    assert len(doc["redis_ratios"]) == 4


# -- the command ---------------------------------------------------------------------------------------
def test_command_writes_the_json_document(endpoint_url, tmp_path):
    output = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "zae_limiter.benchmark", "--endpoint-url", endpoint_url, "--scenario", "single",
         "--api", "sync", "--concurrency", "1", "--iterations", "3", "--quick", "--output", str(output)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "CPU µs/acq" in done.stdout and "WCU/acq AWS est." in done.stdout
    doc = json.loads(output.read_text())
    assert doc["benchmark"] == "zae-limiter" and doc["format"] == report.FORMAT
    assert doc["date"] and doc["duration_seconds"] >= 0 and doc["command"].startswith("python -m zae_limiter.benchmark --endpoint-url")
    assert doc["machine"]["python"] == sys.version.split()[0] and doc["machine"]["cpu_count"] >= 1
    assert doc["settings"]["iterations"] == 3 and doc["settings"]["scenarios"] == ["single"]
    assert doc["settings"]["hot_path"] == "lean"
    assert doc["ours"]["version"] and doc["published"] is None and doc["ratios"] == []
    (row,) = doc["ours"]["rows"]
    assert (row["scenario"], row["api"], row["concurrency"]) == ("single", "sync", 1)
    assert (row["acquires"], row["errors"]) == (3, 0)
    assert row["requests"] == {"UpdateItem": 3} and row["requests_per_acquire"] == 1.0
    assert row["wcu_per_acquire_estimate"] == 1.0  # one small bucket item, one write per acquire
    assert row["capacity_pass"]["requests_per_acquire"] == 1.0
    for key in ("wcu_per_acquire_reported", "cpu_us_per_acquire", "acquires_per_second", "p50_ms", "p99_ms"):
        assert isinstance(row[key], float), key


def test_the_boto3_hot_path_is_measured_on_request(endpoint_url, tmp_path, monkeypatch):
    """--boto3-hot-path: the same scenario with every request through boto3 (what the lean path saves),
    and the document says which path ran."""
    from zae_limiter.transport.dataplane import DataPlane

    def refuse(*args, **kwargs):
        raise AssertionError("the lean data plane was used")

    monkeypatch.setattr(DataPlane, "call", refuse)  # any use shows up as errors in the row
    output = tmp_path / "bench.json"
    code = cli.main(["--endpoint-url", endpoint_url, "--scenario", "single", "--api", "sync", "--concurrency", "1",
                     "--iterations", "3", "--quick", "--boto3-hot-path", "--output", str(output)])
    assert code == 0
    doc = json.loads(output.read_text())
    assert doc["settings"]["hot_path"] == "boto3"
    (row,) = doc["ours"]["rows"]
    assert (row["acquires"], row["errors"], row["requests"]) == (3, 0, {"UpdateItem": 3})


@pytest.mark.parametrize(
    "args",
    [["--scenario", "nope"], ["--api", "fast"], ["--concurrency", "0"], ["--seconds", "-1"], ["--iterations", "x"]],
)
def test_bad_options_exit_2(args):
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    assert exit_.value.code == 2


def test_an_unavailable_published_package_exits_1_with_the_reason(monkeypatch, capsys, tmp_path):
    def unavailable(*_, **__):
        raise published.PublishedUnavailable("no package index reachable")

    monkeypatch.setattr(published, "ensure_published", unavailable)
    output = tmp_path / "x.json"
    code = cli.main(["--compare-published", "--endpoint-url", "http://127.0.0.1:9", "--output", str(output)])
    assert code == 1
    assert "no package index reachable" in capsys.readouterr().err
    assert not output.exists()
