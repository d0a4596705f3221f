"""The Lambda package: `aggregator/` plus only the zae_limiter modules in `aggregator.RUNTIME_MODULES`
(with an empty `zae_limiter/__init__.py`) runs the handler, and pulls in nothing the Lambda runtime lacks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import aggregator
from usage_stream import snapshots, stream_event
from zae_limiter import Limit, SyncRateLimiter

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, sys
from aggregator.handler import handler
event = json.load(sys.stdin)
response = handler(event, None)
import zae_limiter
print(json.dumps({"response": response, "zae_limiter": zae_limiter.__file__, "modules": sorted(sys.modules)}))
"""


def build_package(target: Path) -> None:
    """The layout the component zips: what the handler imports and nothing else."""
    shutil.copytree(ROOT / "aggregator", target / "aggregator", ignore=shutil.ignore_patterns("__pycache__"))
    (target / "zae_limiter").mkdir()
    (target / "zae_limiter" / "__init__.py").write_text('"""Only the pure modules the aggregator needs."""\n')
    for module in aggregator.RUNTIME_MODULES:
        shutil.copy(ROOT / "zae_limiter" / f"{module}.py", target / "zae_limiter" / f"{module}.py")


def test_the_handler_runs_from_its_minimal_package(tmp_path, endpoint_url, table_name, dynamodb):
    with SyncRateLimiter(table_name=table_name, region="us-east-1", endpoint_url=endpoint_url) as limiter:
        with limiter.acquire("k", "gpt-4", [Limit.per_minute("rpm", 10)], consume={"rpm": 2}):
            pass
    event = stream_event(endpoint_url, table_name)
    build_package(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SNAPSHOT_"))}
    env.update(AWS_ENDPOINT_URL=endpoint_url, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
    env.pop("AWS_SESSION_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, env=env, input=json.dumps(event),
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["response"] == {"batchItemFailures": []}
    assert Path(result["zae_limiter"]).parent == tmp_path / "zae_limiter"  # not the installed package
    loaded = {name.split(".")[0] for name in result["modules"]} | set(result["modules"])
    assert not loaded & {"click", "rich", "moto", "pulumi", "zae_limiter.limiter", "zae_limiter.flows"}
    assert sorted(m.split(".", 1)[1] for m in result["modules"] if m.startswith("zae_limiter.")) == sorted(
        aggregator.RUNTIME_MODULES
    )
    assert [v for v in snapshots(dynamodb, table_name).values()] == [({"rpm": 2.0}, 1)] * 2
