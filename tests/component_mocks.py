"""Running a Pulumi program under Pulumi's mocks, and recording what the engine would have received.

No engine or provider plugin runs here (DESIGN section 10). `deploy(program, config)` runs `program` with
`pulumi.runtime.set_mocks(..., preview=False)` on a fresh event loop, with Pulumi's global settings,
root stack and config reset before and after: the mocks keep module-level state, and work left queued on
one test's loop would otherwise run inside the next test, against its mocks. The mocks echo each
resource's inputs and add the outputs AWS would compute (`arn`, `streamArn`, autonamed `name`, `url`),
so code that builds on them (policies from ARNs, alarm dimensions from a queue name) is exercised with
realistic values.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import pulumi
from pulumi.runtime import rpc, settings
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func

PROJECT = "zae-limiter"
STACK = "test"
ACCOUNT = "123456789012"
REGION = "us-east-1"
STREAM_LABEL = "2026-01-01T00:00:00.000"


@dataclass
class Registered:
    type: str
    name: str  # logical name
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    custom: bool


def _physical_name(args: pulumi.runtime.MockResourceArgs) -> str:
    if args.inputs.get("name"):
        return args.inputs["name"]
    prefix = args.inputs.get("namePrefix")
    return f"{prefix}20260101000000000000000001" if prefix else f"{args.name}-1a2b3c4"


def computed_outputs(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    """What AWS would add to a resource's inputs, for the types the component creates."""
    name = _physical_name(args)
    arn = {
        "aws:dynamodb/table:Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
        "aws:lambda/function:Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
        "aws:cloudwatch/logGroup:LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}",
        "aws:sqs/queue:Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
        "aws:iam/role:Role": f"arn:aws:iam::{ACCOUNT}:role/{name}",
        "aws:iam/policy:Policy": f"arn:aws:iam::{ACCOUNT}:policy/{name}",
        "aws:cloudwatch/metricAlarm:MetricAlarm": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}",
        "aws:sns/topic:Topic": f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}",
    }.get(args.typ, f"arn:aws:mock:{REGION}:{ACCOUNT}:{args.typ}/{name}")
    outputs: dict[str, Any] = {"arn": arn}
    if args.typ in ("aws:iam/rolePolicy:RolePolicy", "aws:lambda/eventSourceMapping:EventSourceMapping"):
        return {}
    outputs["name"] = name
    if args.typ == "aws:dynamodb/table:Table":
        outputs["streamArn"] = f"{arn}/stream/{STREAM_LABEL}"
        outputs["streamLabel"] = STREAM_LABEL
    if args.typ == "aws:sqs/queue:Queue":
        outputs["url"] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
    return outputs


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.registered: list[Registered] = []
        self._lock = threading.Lock()  # the mock monitor is called from the SDK's worker threads

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        outputs = {**args.inputs, **computed_outputs(args)}
        with self._lock:
            self.registered.append(Registered(args.typ, args.name, dict(args.inputs), outputs, bool(args.custom)))
        physical_id = outputs.get("name") or f"{args.name}-id"
        return physical_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        return {}, []


@dataclass(frozen=True)
class AliasSpec:
    """A resource's alias as the SDK sends it: "I was `name` of `type` under `parent_urn`"; an empty name or
    type is the resource's own, `no_parent` a resource that had none. `urn`: the URN it stands for, by the
    mock monitor's rule for URNs (the one the recorded URNs follow)."""

    name: str
    type: str
    parent_urn: str
    no_parent: bool
    urn: str


class RecordingMonitor(MockMonitor):
    """Also keeps, by URN, what each resource registered as its outputs (`register_outputs`), the aliases
    it was registered with and the resources it waits for."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.registered_outputs: dict[str, dict[str, Any]] = {}
        self.aliases: dict[str, list[AliasSpec]] = {}
        self.dependencies: dict[str, list[str]] = {}

    def RegisterResource(self, request: Any) -> Any:
        urn = self.make_urn(request.parent, request.type, request.name)
        specs = []
        for alias in request.aliases:
            spec = alias.spec
            parent = "" if spec.noParent else (spec.parentUrn or request.parent)
            old_urn = alias.urn or self.make_urn(parent, spec.type or request.type, spec.name or request.name)
            specs.append(AliasSpec(spec.name, spec.type, spec.parentUrn, spec.noParent, old_urn))
        self.aliases[urn] = specs
        self.dependencies[urn] = list(request.dependencies)
        return super().RegisterResource(request)

    def RegisterResourceOutputs(self, request: Any) -> Any:
        outputs = rpc.deserialize_properties(request.outputs)
        self.registered_outputs[request.urn] = {key: value for key, value in outputs.items()}
        return super().RegisterResourceOutputs(request)


@dataclass
class Deployment:
    """What one run of a program registered, its result and its stack exports (resolved)."""

    resources: list[Registered]
    result: Any
    exports: dict[str, Any]
    urns: list[str]  # the engine's names: they carry each resource's parent type chain
    registered_outputs: dict[str, dict[str, Any]]
    aliases: dict[str, list[AliasSpec]]  # by URN, what each resource was registered with
    dependencies: dict[str, list[str]]  # by URN, the URNs it waits for (depends_on and its inputs' resources)
    loop: asyncio.AbstractEventLoop = field(repr=False)
    _resolved: dict[int, Any] = field(default_factory=dict, repr=False)

    def urn_of(self, resource: Registered) -> str:
        (found,) = [urn for urn in self.urns if urn.endswith(f"${resource.type}::{resource.name}") or urn.endswith(f"::{resource.type}::{resource.name}")]
        return found

    def of_type(self, type_token: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str) -> Registered:
        found = self.of_type(type_token)
        assert len(found) == 1, f"expected one {type_token}, got {[r.name for r in found]}"
        return found[0]

    def named(self, name: str) -> Registered:
        found = [r for r in self.resources if r.name == name]
        assert len(found) == 1, f"expected one resource named {name}, got {len(found)}"
        return found[0]

    @property
    def custom(self) -> list[Registered]:
        return [r for r in self.resources if r.custom]

    def shape(self) -> list[tuple[str, str, Any]]:
        """(type, logical name, inputs) of every resource, sorted, with assets as their contents (they
        compare by identity): equal shapes, equal deployments."""
        return sorted(((r.type, r.name, plain(r.inputs)) for r in self.resources), key=lambda item: (item[0], item[1]))


def plain(value: Any) -> Any:
    """`value` with Pulumi assets and archives replaced by what they hold."""
    if isinstance(value, pulumi.AssetArchive):
        return {"AssetArchive": {key: plain(asset) for key, asset in value.assets.items()}}
    if isinstance(value, pulumi.StringAsset):
        return {"StringAsset": value.text}
    if isinstance(value, (pulumi.Asset, pulumi.Archive)):
        return {type(value).__name__: getattr(value, "path", None) or getattr(value, "uri", None)}
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def _resolve(loop: asyncio.AbstractEventLoop, value: Any) -> Any:
    if value is None:
        return None
    return loop.run_until_complete(pulumi.Output.from_input(value).future())


def _reset() -> None:
    settings.reset_options(project=PROJECT, stack=STACK)  # also drops the root stack resource
    pulumi.runtime.set_all_config({}, [])


def deploy(program: Callable[[], Any], config: dict[str, str] | None = None, resolve: tuple = ()) -> Deployment:
    """Run `program` under the mocks with the project's `config` (keys without the project prefix).
    `resolve`: attribute names of the program's result to resolve into `Deployment.exports` as
    `result.<name>` (component outputs that the program does not export)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    holder: dict[str, Any] = {}
    try:
        _reset()
        pulumi.runtime.set_all_config({f"{PROJECT}:{key}": value for key, value in (config or {}).items()}, [])
        pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=STACK, preview=False, monitor=monitor)

        def run() -> None:
            holder["result"] = program()

        loop.run_until_complete(run_pulumi_func(run))
        root = settings.get_root_resource()
        exports = {key: _resolve(loop, value) for key, value in getattr(root, "outputs", {}).items()}
        for name in resolve:
            exports[f"result.{name}"] = _resolve(loop, getattr(holder["result"], name))
        return Deployment(
            list(mocks.registered),
            holder.get("result"),
            exports,
            list(monitor.resources),
            dict(monitor.registered_outputs),
            dict(monitor.aliases),
            dict(monitor.dependencies),
            loop,
        )
    finally:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
        asyncio.set_event_loop(None)
        _reset()
