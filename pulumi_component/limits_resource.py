"""`ZaeLimits`: stored limits as Pulumi resources, next to the `ZaeLimiter` that makes their table.

    limiter = ZaeLimiter("rate-limits", ZaeLimiterArgs(table_name="rate_limits"))
    ZaeLimits("limits", ZaeLimitsArgs(table_name=limiter.table_name, spec=Path("limits.yaml")))

The spec is what `zae-limiter limits apply FILE` reads (a path, YAML text, the parsed mapping or a
LimitsSpec), checked whole when the program runs: a bad key fails the program before anything is
registered.

Why a component of one dynamic resource per item (the system defaults, each resource's defaults and
flag, each entity with its stored limits and flags), rather than one dynamic resource holding the whole
spec:
- `pulumi preview` lists what changes by name (`+ limits-entity-key-1`, `~ limits-resource-gpt-4`), not
  one opaque update of everything;
- the engine orders the writes: an entity depends on its parent's resource, so parents are created first
  and deleted last; removing an entity from the spec deletes just that resource;
- a failure part way is recorded exactly: the items that were applied are in the state, the one that
  failed is not, and the next `up` retries only what is left.
Each item runs the plan of `zae_limiter.limits_spec` on its own scope (`limits_spec/items.py`), so the
CLI and Pulumi apply one definition. An item owns what it names: an entity's stored limits, schedules and
disabled flags become exactly the spec's, a limit or a flag the spec drops is deleted. Moving the limits to another table (its name, region or
endpoint) replaces every item: deleted from the old table first, then created in the new one.

The dynamic provider is pickled into the state (by reference: `LimitsProvider` is importable and holds
nothing), so the Python that runs `pulumi up` must be able to import this package, as it does the program.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pulumi
import pulumi.dynamic as dynamic
from pulumi.runtime import rpc

from zae_limiter.core.errors import ValidationError
from zae_limiter.limits_spec import LimitsSpec, SpecError, from_document, load_file, load_text, to_document
from zae_limiter.limits_spec.items import ENTITY, RESOURCE, SYSTEM, Item, item_spec, read_item, remove_item, split, sync_item

from .args import is_computed

TYPE_TOKEN = "zae-limiter:index:ZaeLimits"
# What an item is stored in: changing any of these moves it to another table (a replacement).
LOCATION = ("table_name", "region", "endpoint_url")


@dataclass(frozen=True)
class ZaeLimitsArgs:
    """Arguments of ZaeLimits."""

    table_name: pulumi.Input[str]
    """The table holding the limits (for example `ZaeLimiter.table_name`)."""
    spec: Any
    """The limits: a path to a limits file, its YAML text, the parsed mapping, or a LimitsSpec."""
    region: Optional[pulumi.Input[str]] = None
    """AWS region of the table (default: the stack's aws:region, else the environment's)."""
    endpoint_url: Optional[pulumi.Input[str]] = None
    """DynamoDB endpoint (an emulator); default AWS."""


def spec_of(value: Any) -> LimitsSpec:
    """The spec, checked whole (SpecError names each bad key)."""
    if isinstance(value, LimitsSpec):
        return from_document(to_document(value))
    if isinstance(value, Path):
        return load_file(value)
    if isinstance(value, str):
        if "\n" not in value and value.strip().endswith((".yaml", ".yml")):
            raise ValidationError("spec", f"{value!r} looks like a file name: pass Path({value!r}) to read the file")
        return load_text(value, "spec")
    if is_computed(value):
        raise ValidationError("spec", "must be plain data known when the program runs (not an Output)")
    return from_document(value, "spec")


class LimitsProvider(dynamic.ResourceProvider):
    """Create, diff, update, read and delete one item (see the module docstring)."""

    serialize_as_secret_always = False  # it holds nothing: the pickle is a reference to this class

    def configure(self, req: dynamic.ConfigureRequest) -> None:
        self.default_region = req.config.get("aws:region")

    def _limiter(self, props: dict[str, Any]) -> Any:
        from zae_limiter import SyncRateLimiter

        region = props.get("region") or getattr(self, "default_region", None)
        return SyncRateLimiter(table_name=props["table_name"], region=region, endpoint_url=props.get("endpoint_url"),
                               config_cache_seconds=0)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        try:
            _item_spec(news)
        except (SpecError, ValidationError) as error:
            return dynamic.CheckResult(news, [dynamic.CheckFailure("spec", str(error))])
        return dynamic.CheckResult(news, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        moved = [key for key in LOCATION if news.get(key) == rpc.UNKNOWN or olds.get(key) != news.get(key)]
        changed = bool(moved) or olds.get("spec") != news.get("spec")
        return dynamic.DiffResult(changes=changed, replaces=moved, delete_before_replace=True)

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        return dynamic.CreateResult(_id(props), self._sync(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(self._sync(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        with self._limiter(props) as limiter:
            remove_item(limiter, props["kind"], props["key"])

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        with self._limiter(props) as limiter:
            current = read_item(limiter, props["kind"], props["key"])
        if current is None:
            return dynamic.ReadResult("", {})  # gone from the table: the engine drops it from the state
        return dynamic.ReadResult(id_, {**_inputs(props), "spec": current})

    def _sync(self, props: dict[str, Any]) -> dict[str, Any]:
        with self._limiter(props) as limiter:
            applied = sync_item(limiter, props["kind"], props["key"], props["spec"])
        return {**_inputs(props), "applied": [str(change) for change in applied]}


def _item_spec(props: dict[str, Any]) -> LimitsSpec:
    return item_spec(props["kind"], props["key"], props["spec"])


def _inputs(props: dict[str, Any]) -> dict[str, Any]:
    return {key: props.get(key) for key in (*LOCATION, "kind", "key", "spec")}


def _id(props: dict[str, Any]) -> str:
    return SYSTEM if props["kind"] == SYSTEM else f"{props['kind']}/{props['key']}"


class SystemDefaults(dynamic.Resource, module="zae-limiter", name="SystemDefaults"):
    """The table's system defaults."""


class ResourceDefaults(dynamic.Resource, module="zae-limiter", name="ResourceDefaults"):
    """One resource's default limits."""


class Entity(dynamic.Resource, module="zae-limiter", name="Entity"):
    """One entity: its record and all its stored limits."""


_TYPES = {SYSTEM: SystemDefaults, RESOURCE: ResourceDefaults, ENTITY: Entity}


def logical_name(component: str, item: Item) -> str:
    if "::" in item.key:  # the engine's separator in a resource's URN
        raise ValidationError(f"entities.{item.key}", "an id with '::' cannot name a Pulumi resource")
    return f"{component}-system" if item.kind == SYSTEM else f"{component}-{item.kind}-{item.key}"


class ZaeLimits(pulumi.ComponentResource):
    """Stored limits of a zae-limiter table: system defaults, resource defaults, entities and their limits."""

    items: pulumi.Output[list]
    """The id of every item (system, resource/NAME, entity/ID), as applied."""

    def __init__(self, name: str, args: ZaeLimitsArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        if not isinstance(args, ZaeLimitsArgs):
            raise ValidationError("args", f"must be a ZaeLimitsArgs, got {type(args).__name__}")
        items = split(spec_of(args.spec))  # checked whole before anything is registered
        for item in items:
            logical_name(name, item)
        super().__init__(TYPE_TOKEN, name, None, opts)
        self.resources: dict[str, dynamic.Resource] = {}
        provider = LimitsProvider()
        for item in items:
            depends = [self.resources[f"{ENTITY}/{item.parent}"]] if item.parent is not None else []
            props = {"table_name": args.table_name, "region": args.region, "endpoint_url": args.endpoint_url,
                     "kind": item.kind, "key": item.key, "spec": item.value}
            resource = _TYPES[item.kind](
                provider, logical_name(name, item), props, pulumi.ResourceOptions(parent=self, depends_on=depends)
            )
            self.resources[_id(props)] = resource
        self.items = pulumi.Output.all(*[r.id for r in self.resources.values()]).apply(list)
        self.register_outputs({"items": self.items})
