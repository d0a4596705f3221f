"""Serves the benchmark's commands on the published zae-limiter package: one JSON line in, one out.

Executed by the python of the published package's own virtual environment, in isolated mode
(`python -I published_runner.py --serve`): there `import zae_limiter` is the published package, so this
file imports nothing from ours. It loads this folder by path as the package `zae_bench` (its shared
modules import only the standard library and each other), so both packages are measured by the same
code, and the parent drives it cell by cell and round by round (published.RemoteSystem):

    {"command": "prepare", "scenario": {...}, "api": "sync", "cells": 2, "table": "..."}
    {"command": "capacity_pass", "settings": {...}}
    {"command": "open_cell", "index": 0, "concurrency": 32, "processes": 1, "settings": {...}}  -> warm-up
    {"command": "run", "seconds": 1.0, "iterations": null}                                  -> a stretch
    {"command": "close_cell"}
    {"command": "usage"} / {"command": "versions"} / {"command": "quit"}
Each answer is {"ok": true, "result": ...} or {"ok": false, "error": "..."}, on the line after its command.
Anything the package prints goes to stderr; stdout carries the answers only.

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
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REGION = "us-east-1"
ENTITY = "bench-key"
PARENT = "bench-project"
RESOURCE = "bench-model"
READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
DATA_OPERATIONS = READS | {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def _load_folder() -> None:
    """This folder as the package `zae_bench` (its __init__ holds only a docstring), so that its shared
    modules import each other relatively, and so that a spawned child process, which runs this file's
    top level again, finds them under the same names when it unpickles a target."""
    if "zae_bench" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location("zae_bench", HERE / "__init__.py",
                                                  submodule_search_locations=[str(HERE)])
    package = importlib.util.module_from_spec(spec)
    sys.modules["zae_bench"] = package
    spec.loader.exec_module(package)


_load_folder()
from zae_bench import cells, engine  # noqa: E402  (after the folder is loaded)
from zae_bench import spec as bench_spec  # noqa: E402


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

        return [getattr(Limit, f"per_{s.period}")(s.name, s.rate, s.burst) for s in self.scenario.limits]

    def _client(self) -> Any:
        import boto3

        return boto3.session.Session().client("dynamodb", region_name=REGION, endpoint_url=self.endpoint_url)

    def prepare(self) -> None:
        from zae_limiter import SyncRateLimiter, SyncRepository, schema  # 0.17's own schema module

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


def _settings(data: dict) -> Any:
    return engine.Settings(**{**data, "concurrencies": tuple(data["concurrencies"]), "processes": tuple(data["processes"])})


class Server:
    """The commands of the parent's RemoteSystem, on a cells.LocalSystem of the published package."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self.system = cells.LocalSystem(self._target)
        self.table = ""
        self.cell: Any = None

    def _target(self, scenario: Any, api: str) -> PublishedTarget:
        return PublishedTarget(scenario, self.endpoint_url, self.table)

    def prepare(self, scenario: dict, api: str, cells: int, table: str) -> None:
        self.table = table
        self.system.prepare(bench_spec.scenario_from_dict(scenario), api, cells)

    def capacity_pass(self, settings: dict) -> dict:
        return self.system.capacity_pass(_settings(settings))

    def open_cell(self, index: int, concurrency: int, processes: int, settings: dict) -> dict:
        self.cell = self.system.open_cell(index, concurrency, processes, _settings(settings))
        return self.cell.open()

    def run(self, seconds: float | None, iterations: int | None) -> dict:
        return self.cell.run(seconds, iterations)

    def close_cell(self) -> None:
        if self.cell is not None:
            cell, self.cell = self.cell, None
            cell.close()

    def usage(self) -> None:
        return None  # its buckets' counters are its own; ours are read on our side only

    @staticmethod
    def versions() -> dict:
        import botocore
        import zae_limiter

        return {"version": zae_limiter.__version__, "botocore": botocore.__version__, "python": sys.version.split()[0]}


def serve(server: Server, read: Callable[[], str], answer: Callable[[dict], None]) -> None:
    """Answer each command line until `quit` or the end of input; a failed command is answered too."""
    while True:
        line = read()
        if not line:
            return
        request = json.loads(line)
        command = request.pop("command")
        if command == "quit":
            server.close_cell()
            answer({"ok": True, "result": None})
            return
        try:
            answer({"ok": True, "result": getattr(server, command)(**request)})
        except Exception as error:
            answer({"ok": False, "error": f"{command}: {type(error).__name__}: {error}"[:2000]})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", metavar="ENDPOINT_URL", required=True,
                        help="the DynamoDB endpoint; then read commands from stdin, answer on stdout")
    endpoint_url = parser.parse_args().serve
    # The published clients read credentials and region from the environment; an emulator ignores them.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    warnings.simplefilter("ignore")  # its deprecation notices are not results
    logging.basicConfig(level=logging.ERROR)  # e.g. urllib3's "connection pool is full" at 32 threads
    # Whatever the package (or a child process, which inherits the descriptors) prints must not be taken
    # for an answer: the answers get a descriptor of their own, and stdout becomes stderr.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def answer(document: dict) -> None:
        answers.write(json.dumps(document) + "\n")
        answers.flush()

    serve(Server(endpoint_url), sys.stdin.readline, answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
