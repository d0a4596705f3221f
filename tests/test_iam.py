"""The IAM manifest against what the code really sends: the runtime (both APIs) and the aggregator are
driven through every public method on the embedded server, every DynamoDB request is recorded with
botocore's `before-call` hook, and each must be allowed by the policy of the role that does that work.
Static checks back this up for paths a workload does not reach (error branches)."""

from __future__ import annotations

import ast
import json
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from botocore import xform_name

import aggregator
import aggregator.handler as aggregator_handler
from conftest import REGION, AsyncAdapter, FakeClock, transport_of
from zae_limiter import Limit, RateLimiter, RateLimitExceeded, SyncRateLimiter, iam
from zae_limiter.limits_spec import table as limits_table
from zae_limiter.limits_spec import load_text
from zae_limiter.local import ensure_table
from zae_limiter.local_stream import StreamReader, lambda_environment, lambda_events

ROOT = Path(__file__).resolve().parent.parent
RPM = Limit.per_minute("rpm", 10)
TPM = Limit.per_minute("tpm", 1_000)


class OperationRecorder:
    """Every DynamoDB request a client sends, as a manifest `Operation`, under the current phase."""

    def __init__(self) -> None:
        self.phase = "setup"
        self.seen: dict[str, set[iam.Operation]] = {}

    def attach(self, limiter: Any) -> None:
        """Observe the limiter's transport: it sees the lean data plane's requests and boto3's alike."""
        transport_of(limiter).observers.append(lambda call: self._record(call.operation, call.request))

    def attach_client(self, client: Any) -> Any:
        """Observe a plain boto3 client (the aggregator's) through botocore's event hooks."""
        client.meta.events.register("before-call.dynamodb", self._on_botocore_call, unique_id=f"iam-{id(self)}")
        return client

    def _on_botocore_call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        body = params.get("body") or b"{}"
        self._record(model.name, json.loads(body.decode() if isinstance(body, bytes) else body))

    def _record(self, operation: str, request: dict[str, Any]) -> None:
        self.seen.setdefault(self.phase, set()).add(iam.Operation.from_request(operation, request))

    @contextmanager
    def during(self, phase: str) -> Iterator[None]:
        self.phase = phase
        try:
            yield
        finally:
            self.phase = "setup"

    def operations(self, *phases: str) -> set[iam.Operation]:
        return set().union(*(self.seen.get(phase, set()) for phase in phases))


def assert_covered(role: str, performed: set[iam.Operation]) -> None:
    assert performed, f"the {role} workload sent no request: the check would be vacuous"
    gaps = iam.missing(role, performed)
    assert not gaps, f"the {role} policy lacks: " + ", ".join(f"{action} for {op}" for op, action in gaps)


def assert_all_used(role: str, performed: set[iam.Operation]) -> None:
    """The reverse: a manifest entry nothing calls any more is a grant to remove."""
    unused = set(iam.operations(role)) - performed
    assert not unused, f"the {role} manifest grants operations the workload never sent: {sorted(unused)}"


@pytest.fixture(scope="module", params=["sync", "async"])
def workload(request: pytest.FixtureRequest, endpoint_url: str) -> Iterator[OperationRecorder]:
    """An administrator sets things up; an application acquires; a dashboard reads. Each is its own
    limiter (own client, cold caches), as they would be separate processes with separate roles.
    Run once per API for the module's tests."""
    table = f"t_{uuid.uuid4().hex[:12]}"
    ensure_table(table, endpoint_url=endpoint_url, region=REGION)
    clock = FakeClock()

    def make() -> Any:
        kwargs = dict(table_name=table, region=REGION, endpoint_url=endpoint_url, clock=clock)
        return SyncRateLimiter(**kwargs) if request.param == "sync" else AsyncAdapter(RateLimiter(**kwargs))

    recorder = OperationRecorder()
    admin, app, reader = limiters = [make() for _ in range(3)]
    for limiter in limiters:
        recorder.attach(limiter)
    try:
        run_workload(recorder, admin, app, reader, clock)
        yield recorder
    finally:
        for limiter in limiters:
            limiter.close()


def core_of(limiter: Any) -> Any:
    return getattr(limiter, "limiter", limiter)._core


def limits_spec_reader(limiter: Any) -> Any:
    """Runs a limits_spec read flow on either API's limiter (the sync driver, or the async one's)."""
    inner = getattr(limiter, "limiter", limiter)
    if isinstance(limiter, AsyncAdapter):
        return lambda flow: limiter.runner.run(inner._run(flow))
    return inner._run


def run_workload(recorder: OperationRecorder, admin: Any, app: Any, reader: Any, clock: FakeClock) -> None:
    with recorder.during("admin"):
        admin.create_entity("org", name="Org")
        admin.create_entity("key", parent_id="org", cascade=True, metadata={"tier": "pro"})
        admin.create_entity("solo")
        admin.set_system_defaults([RPM, TPM])
        admin.set_resource_defaults("gpt", [RPM, TPM])
        admin.set_limits("org", [RPM, TPM])
        admin.set_limits("key", [RPM, TPM], resource="gpt")

    with recorder.during("acquire"):
        for entity in ("solo", "key"):  # without and with cascade
            with app.acquire(entity, "gpt", consume={"rpm": 1, "tpm": 100}) as lease:
                lease.adjust(tpm=50)
                lease.adjust(tpm=-20)
            with pytest.raises(RuntimeError):
                with app.acquire(entity, "gpt", consume={"rpm": 1, "tpm": 100}):
                    raise RuntimeError("the work failed: refunded")
            with pytest.raises(RateLimitExceeded):
                with app.acquire(entity, "gpt", consume={"rpm": 10}):
                    pass
            app.available(entity, "gpt")
            app.time_until_available(entity, "gpt", {"rpm": 5})
        with app.acquire("anon", "other", [RPM], consume={"rpm": 1}):
            pass

    with recorder.during("read"):
        reader.get_entity("key")
        reader.get_children("org")
        reader.get_limits("key", "gpt")
        reader.get_resource_defaults("gpt")
        reader.get_system_defaults()
        reader.available("key", "gpt")
        reader.time_until_available("key", "gpt", {"tpm": 10})
        start = datetime.fromtimestamp(clock() / 1e9, timezone.utc) - timedelta(days=1)
        reader.get_usage_snapshots(entity_id="key", resource="gpt", start=start)
        reader.get_usage_snapshots(entity_id="key", start=start)  # every resource of the entity
        reader.get_usage_snapshots(resource="gpt", window="daily")
        reader.get_usage_summary(entity_id="key", resource="gpt")

    with recorder.during("admin"):
        # Limits as code: what a limits file names, then (--prune) the whole table.
        read_state = limits_spec_reader(admin)
        read_state(limits_table.read_named(core_of(admin), load_text("entities: {key: {parent: org}}")))
        read_state(limits_table.read_table(core_of(admin)))
        admin.delete_limits("key", "gpt")
        admin.delete_resource_defaults("gpt")
        admin.delete_system_defaults()
        admin.delete_entity("key")


def test_acquire_only_policy_covers_acquire_adjust_refund_and_availability(workload):
    performed = workload.operations("acquire")
    assert iam.Operation("TransactWriteItems", parts=("Update",)) in performed  # cascade was exercised
    assert_covered("acquire", performed)
    assert_all_used("acquire", performed)


def test_read_only_policy_covers_reads_and_writes_nothing(workload):
    performed = workload.operations("read")
    assert_covered("read_only", performed)
    assert_all_used("read_only", performed)
    granted = {a for actions in iam.grants("read_only").values() for a in actions}
    assert not granted & {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}


def test_full_policy_covers_everything(workload):
    performed = workload.operations("admin", "acquire", "read")
    assert_covered("full", performed)
    assert_all_used("full", performed)


def test_a_missing_grant_is_caught():
    """The check can fail: a request outside the role is reported with the action it needs."""
    gaps = iam.missing("acquire", {iam.Operation("PutItem"), iam.Operation("Query", iam.INDEX)})
    assert [(op.name, action) for op, action in gaps] == [("PutItem", "dynamodb:PutItem"), ("Query", "dynamodb:Query")]
    transaction = iam.Operation("TransactWriteItems", parts=("ConditionCheck", "Update"))
    assert iam.missing("full", {transaction}) == [(transaction, "dynamodb:ConditionCheckItem")]
    # Query on the table does not stand in for Query on an index, nor the reverse.
    assert iam.missing("read_only", {iam.Operation("Query", iam.INDEX)}) == []
    assert iam.missing("aggregator", {iam.Operation("Query", iam.INDEX)}) != []


# -- static checks: every operation the code names --------------------------------------------------
def _call_operations(path: Path) -> set[str]:
    """Operation names in `Call("Operation", ...)` instructions (the runtime's flows)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Call" and node.args:
            first = node.args[0]
            assert isinstance(first, ast.Constant), f"{path.name}: Call() with a computed operation name"
            names.add(first.value)
    return names


def _client_methods(path: Path, operations: dict[str, str]) -> set[str]:
    """Operation names of boto3 DynamoDB client methods called in a module (`client.update_item(...)`)."""
    return {
        operations[node.func.attr]
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in operations
    }


def _dynamodb_operations() -> dict[str, str]:
    model = boto3.session.Session().client("dynamodb", region_name="us-east-1").meta.service_model
    return {xform_name(name): name for name in model.operation_names}


def test_every_operation_the_runtime_names_is_in_the_full_policy():
    named = set().union(*(_call_operations(p) for p in (ROOT / "zae_limiter").rglob("*.py")))
    assert {"UpdateItem", "BatchGetItem", "TransactWriteItems"} <= named
    granted = {op.name for op in iam.FULL}
    assert named <= granted, f"the runtime calls {sorted(named - granted)}, which the manifest lacks"


def test_every_operation_the_aggregator_calls_is_in_its_policy():
    operations = _dynamodb_operations()
    called = set().union(*(_client_methods(p, operations) for p in (ROOT / "aggregator").glob("*.py")))
    assert "UpdateItem" in called
    declared = set(aggregator.TABLE_OPERATIONS)
    assert called <= declared, f"the aggregator calls {sorted(called - declared)} without declaring them"
    assert_covered("aggregator", {iam.Operation(name) for name in called})


def test_stream_grants_are_what_lambdas_poller_needs():
    # AWS documents these four for a function's role on a DynamoDB stream event source.
    assert iam.grants("aggregator")[iam.STREAM] == (
        "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams",
    )


# -- the aggregator, invoked on the table's real stream -------------------------------------------
def test_aggregator_requests_are_covered(endpoint_url, table_name, monkeypatch):
    with SyncRateLimiter(table_name=table_name, region=REGION, endpoint_url=endpoint_url) as limiter:
        limiter.create_entity("org")
        limiter.create_entity("key", parent_id="org", cascade=True)
        for entity in ("key", "solo"):
            with limiter.acquire(entity, "gpt", [RPM, TPM], consume={"rpm": 1, "tpm": 10}) as lease:
                lease.adjust(tpm=5)

    recorder = OperationRecorder()
    real_client = aggregator_handler.default_client
    monkeypatch.setattr(aggregator_handler, "default_client", lambda region: recorder.attach_client(real_client(region)))
    with StreamReader(table_name, endpoint_url=endpoint_url) as reader:
        records = [record for batch in reader.read() for record in batch.records]
        events = lambda_events(reader.stream_arn, records)
    assert records, "the table's stream is empty"
    with lambda_environment(endpoint_url), recorder.during("aggregator"):
        for _ in range(2):  # a redelivery: the second pass meets its own marks (conditional writes)
            for event in events:
                assert aggregator_handler.handler(event, None) == {"batchItemFailures": []}
    performed = recorder.operations("aggregator")
    assert iam.Operation("UpdateItem") in performed
    assert_covered("aggregator", performed)
