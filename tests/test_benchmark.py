"""The benchmark command: its deterministic figures (requests per warm acquire, the AWS WCU estimate),
its JSON document and its exit codes. Nothing here asserts a time."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from zae_limiter.benchmark import cli, engine, published, report, sizing
from zae_limiter.benchmark.ours import count_requests
from zae_limiter.benchmark.spec import BY_NAME, SCENARIOS, scenario_from_dict

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
}


def test_every_scenario_has_an_expected_count():
    assert set(EXPECTED) == {scenario.name for scenario in SCENARIOS}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_requests_per_warm_acquire(endpoint_url, name):
    cells = count_requests(BY_NAME[name], endpoint_url, f"tb-{uuid.uuid4().hex[:10]}", iterations=N)
    assert set(cells) == {"sync", "async"}
    for api, cell in cells.items():
        assert cell["errors"] == 0, (api, cell["first_error"])
        assert cell["acquires"] == N, api
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

    result = asyncio.run(engine.drive_tasks(op, 8, None, 50))
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
@pytest.mark.parametrize("module", ["spec.py", "engine.py"])
def test_shared_modules_import_only_the_standard_library(module):
    """The runner loads them in the published package's venv, where `zae_limiter` is not ours."""
    tree = ast.parse((BENCHMARK / module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: relative import"
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            root = name.split(".")[0]
            assert root == "__future__" or root in sys.stdlib_module_names, f"{module} imports {name}"


def test_runner_starts_in_isolated_mode(tmp_path):
    done = subprocess.run([sys.executable, "-I", str(published.RUNNER), "--help"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--request" in done.stdout


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
    from zae_limiter.dataplane import DataPlane

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
