"""Runs the benchmark's scenarios on the published zae-limiter package and writes the results as JSON.

Executed by the python of the published package's own virtual environment, in isolated mode
(`python -I published_runner.py`): there `import zae_limiter` is the published package, so this file
imports nothing from ours. It loads spec.py and engine.py (standard library only) from its own
folder by path, so both packages are measured by the same code.

The published package has no request counter; botocore's event hooks on its DynamoDB client count
the calls (`before-call`) and, in the capacity pass only, ask for and read ReturnConsumedCapacity.
Its table is created from its own schema module's CreateTable request (what its `create_table`
sends; its CloudFormation path needs a stack engine the embedded server does not run), less the
stream, as on our side (see ours.py); then `Repository.open(auto_update=False)` registers the
namespace and the version record on it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REGION = "us-east-1"
ENTITY = "bench-key"
PARENT = "bench-project"
RESOURCE = "bench-model"
READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
DATA_OPERATIONS = READS | {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"zae_bench_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module


bench_spec = _load("spec")
engine = _load("engine")


class Counter:
    """Requests per operation and consumed units, from botocore's event hooks on one client."""

    def __init__(self, client: Any, track_capacity: bool) -> None:
        self.lock = threading.Lock()
        self.requests: dict[str, int] = {}
        self.read_units = 0.0
        self.write_units = 0.0
        client.meta.events.register("before-call.dynamodb", self._count)
        if track_capacity:
            client.meta.events.register("provide-client-params.dynamodb", self._ask_capacity)
            client.meta.events.register("after-call.dynamodb", self._read_capacity)

    def _count(self, model: Any, **_: Any) -> None:
        with self.lock:
            self.requests[model.name] = self.requests.get(model.name, 0) + 1

    @staticmethod
    def _ask_capacity(params: dict, model: Any, **_: Any) -> None:
        if model.name in DATA_OPERATIONS:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")

    def _read_capacity(self, model: Any, parsed: Any = None, **_: Any) -> None:
        consumed = (parsed or {}).get("ConsumedCapacity")
        if not consumed:
            return
        entries = consumed if isinstance(consumed, list) else [consumed]
        units = sum(float(entry.get("CapacityUnits", 0)) for entry in entries)
        with self.lock:
            if model.name in READS:
                self.read_units += units
            else:
                self.write_units += units

    def snapshot(self) -> dict:
        with self.lock:
            return {"requests": dict(self.requests), "read_units": self.read_units, "write_units": self.write_units}


class PublishedTarget:
    def __init__(self, scenario: Any, endpoint_url: str, table_name: str) -> None:
        self.scenario = scenario
        self.endpoint_url = endpoint_url
        self.table_name = table_name

    def _limits(self) -> list:
        from zae_limiter import Limit

        return [getattr(Limit, f"per_{s.period}")(s.name, s.rate) for s in self.scenario.limits]

    def _client(self) -> Any:
        import boto3

        return boto3.session.Session().client("dynamodb", region_name=REGION, endpoint_url=self.endpoint_url)

    def prepare(self) -> None:
        from zae_limiter import SyncRateLimiter, SyncRepository, schema

        request = schema.get_table_definition(self.table_name)
        request.pop("StreamSpecification", None)
        client = self._client()
        try:
            client.create_table(**request)
            client.get_waiter("table_exists").wait(TableName=self.table_name)
        finally:
            client.close()
        repo = SyncRepository.open(stack=self.table_name, region=REGION, endpoint_url=self.endpoint_url,
                                   auto_update=False)
        admin = SyncRateLimiter(repository=repo)
        try:
            if self.scenario.cascade:
                admin.create_entity(PARENT)
                admin.create_entity(ENTITY, parent_id=PARENT, cascade=True)
                admin.set_limits(PARENT, self._limits(), resource=RESOURCE)
            admin.set_limits(ENTITY, self._limits(), resource=RESOURCE)
        finally:
            admin.close()

    def scan(self) -> list[dict]:
        client = self._client()
        try:
            items: list[dict] = []
            for page in client.get_paginator("scan").paginate(TableName=self.table_name, ConsistentRead=True):
                items.extend(page["Items"])
            return items
        finally:
            client.close()

    def open_sync(self, track_capacity: bool) -> Any:
        from zae_limiter import RateLimitExceeded, SyncRateLimiter, SyncRepository

        repo = SyncRepository.open(stack=self.table_name, region=REGION, endpoint_url=self.endpoint_url,
                                   auto_update=False)
        counter = Counter(repo._get_client(), track_capacity)
        limiter = SyncRateLimiter(repository=repo)
        consume = dict(self.scenario.consume)
        op = bench_spec.sync_op(self.scenario, lambda: limiter.acquire(ENTITY, RESOURCE, consume), RateLimitExceeded)
        return engine.Session(op=op, counts=counter.snapshot, close=limiter.close)

    async def open_async(self, track_capacity: bool) -> Any:
        from zae_limiter import RateLimiter, RateLimitExceeded, Repository

        repo = await Repository.open(stack=self.table_name, region=REGION, endpoint_url=self.endpoint_url,
                                     auto_update=False)
        counter = Counter(await repo._get_client(), track_capacity)
        limiter = RateLimiter(repository=repo)
        consume = dict(self.scenario.consume)
        op = bench_spec.async_op(self.scenario, lambda: limiter.acquire(ENTITY, RESOURCE, consume), RateLimitExceeded)
        return engine.Session(op=op, counts=counter.snapshot, close=limiter.close)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--request", required=True,
                        help="JSON: endpoint_url, table_prefix, scenarios, apis, settings, output (a file path)")
    request = json.loads(parser.parse_args().request)
    # The published clients read credentials and region from the environment; an emulator ignores them.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    warnings.simplefilter("ignore")  # its deprecation notices are not results
    logging.basicConfig(level=logging.ERROR)  # e.g. urllib3's "connection pool is full" at 32 threads

    import botocore
    import zae_limiter

    def progress(message: str) -> None:  # the parent shows lines that start with "published "
        print(f"published {message}", file=sys.stderr, flush=True)

    settings = engine.Settings(**{**request["settings"], "concurrencies": tuple(request["settings"]["concurrencies"])})
    results = []
    for data in request["scenarios"]:
        scenario = bench_spec.scenario_from_dict(data)
        for api in request["apis"]:
            table = f"{request['table_prefix']}-{scenario.name}-{api}"
            target = PublishedTarget(scenario, request["endpoint_url"], table)
            target.prepare()
            results.append(engine.run_scenario(target, scenario, api, settings, progress))
    document = {"version": zae_limiter.__version__, "botocore": botocore.__version__,
                "python": sys.version.split()[0], "results": results}
    with open(request["output"], "w") as output:
        json.dump(document, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
