"""The Lambda package as lambda_package.py builds it (`aggregator/`, `zae_limiter/core/` and the lazy
`zae_limiter/__init__.py`) runs the handler, and pulls in nothing the Lambda runtime lacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    """The files the component zips, written out as Lambda unpacks them."""
    from pulumi_component.lambda_package import lambda_files

    for name, content in lambda_files().items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


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
    assert not loaded & {"click", "rich", "moto", "pulumi", "zae_limiter.limiter", "zae_limiter.state.limiter_core"}
    assert all(m == "zae_limiter" or m.startswith("zae_limiter.core") for m in result["modules"] if m.startswith("zae_limiter"))
    assert [v for v in snapshots(dynamodb, table_name).values()] == [({"rpm": 2.0}, 1)] * 2
