"""`ZaeLimits`: its dynamic provider's create, diff, update, read and delete against the embedded server
(called directly, as the engine's dynamic-provider plugin would), the provider's pickle in a fresh
process, and the component under Pulumi's mocks in a program with ZaeLimiter (where the dynamic resources
are mocked too: what is checked is what the engine would be handed)."""

from __future__ import annotations

import base64
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import dill
import pulumi
import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc

import component_mocks
from component_mocks import deploy
from conftest import REGION
from test_limits_spec_file import SMALLEST
from zae_limiter import Limit, SyncRateLimiter, ValidationError
from zae_limiter.limits_spec import SpecError, load_text, plan_against
from zae_limiter.limits_spec.items import split
from pulumi_component import ZaeLimiter, ZaeLimiterArgs, ZaeLimits, ZaeLimitsArgs
from pulumi_component.limits_resource import LimitsProvider


@pytest.fixture
def admin(endpoint_url, table_name):
    with SyncRateLimiter(table_name=table_name, region=REGION, endpoint_url=endpoint_url,
                         config_cache_seconds=0) as limiter:
        yield limiter


def item_props(text: str, table_name: str, endpoint_url: str) -> dict[str, dict[str, Any]]:
    """The inputs ZaeLimits hands each item's dynamic resource, by item id."""
    props = {}
    for item in split(load_text(text)):
        key = "system" if item.kind == "system" else f"{item.kind}/{item.key}"
        props[key] = {"table_name": table_name, "region": REGION, "endpoint_url": endpoint_url,
                      "kind": item.kind, "key": item.key, "spec": item.value}
    return props


def test_create_diff_update_read_delete_on_the_embedded_server(admin, table_name, endpoint_url):
    provider = LimitsProvider()
    props = item_props(SMALLEST, table_name, endpoint_url)
    assert list(props) == ["system", "resource/gpt-4", "entity/org-1", "entity/key-1"]  # parents first
    outs = {}
    for key, item in props.items():
        assert provider.check({}, item).failures == []
        created = provider.create(item)
        assert created.id == key
        outs[key] = created.outs
    assert outs["entity/key-1"]["applied"] == ["create entity key-1", "create entity limits key-1 / _default_"]
    # The table holds what `limits apply` of the same file makes.
    assert plan_against(admin, load_text(SMALLEST), prune=True).empty

    # Nothing changed: no diff. The spec changed: an update in place, which makes the entity's stored
    # limits exactly the new spec's (its `_default_`, dropped, is deleted).
    assert provider.diff("entity/key-1", outs["entity/key-1"], props["entity/key-1"]).changes is False
    changed = item_props(SMALLEST.replace('    limits: {_default_: "rpm=50/min"}', '    metadata: {owner: ml}\n    limits: {gpt-4: "rpm=20/min"}'),
                         table_name, endpoint_url)["entity/key-1"]
    diff = provider.diff("entity/key-1", outs["entity/key-1"], changed)
    assert (diff.changes, diff.replaces) == (True, [])
    updated = provider.update("entity/key-1", outs["entity/key-1"], changed)
    assert updated.outs["applied"] == [
        "change entity key-1", "create entity limits key-1 / gpt-4", "delete entity limits key-1 / _default_",
    ]
    assert admin.get_limits("key-1", "gpt-4") == [Limit.per_minute("rpm", 20)] and admin.get_limits("key-1") == []
    assert admin.get_entity("key-1").metadata == {"owner": "ml"}

    # Drift: someone changes the table behind Pulumi's back. A refresh (read) sees it, and the diff
    # against the program then asks for the update that puts it back.
    admin.set_resource_defaults("gpt-4", [Limit.per_second("rpm", 1)])
    read = provider.read("resource/gpt-4", outs["resource/gpt-4"])
    assert (read.id, read.outs["spec"]) == ("resource/gpt-4", "rpm=1/sec")
    assert provider.diff("resource/gpt-4", read.outs, props["resource/gpt-4"]).changes is True
    provider.update("resource/gpt-4", read.outs, props["resource/gpt-4"])
    assert admin.get_resource_defaults("gpt-4") == [Limit.per_minute("rpm", 100), Limit.per_minute("tpm", 10_000, burst=50_000)]

    # Delete: a parent the table still holds children of is refused (the program does not manage them);
    # the engine deletes children first, after which it goes.
    with pytest.raises(ValidationError, match="still has children this program does not manage \\(key-1\\)"):
        provider.delete("entity/org-1", outs["entity/org-1"])
    for key in ("entity/key-1", "entity/org-1", "resource/gpt-4", "system"):
        provider.delete(key, outs[key])
        assert provider.read(key, outs[key]).id == ""  # gone: a refresh drops it from the state
    provider.delete("entity/key-1", outs["entity/key-1"])  # already gone: nothing to do
    assert plan_against(admin, load_text("{}"), prune=True).empty  # nothing left in the table


def test_create_adopts_what_the_table_already_holds(admin, table_name, endpoint_url):
    admin.create_entity("org-1", name="made by hand")
    admin.set_limits("org-1", [Limit.per_minute("rpm", 500)], "gpt-4")
    admin.set_limits("org-1", [Limit.per_minute("rpm", 1)], "stale")
    created = LimitsProvider().create(item_props(SMALLEST, table_name, endpoint_url)["entity/org-1"])
    assert created.outs["applied"] == ["change entity org-1", "delete entity limits org-1 / stale"]
    assert admin.get_entity("org-1").name is None and admin.get_limits("org-1", "stale") == []


def test_moving_the_limits_to_another_table_replaces_them_old_first():
    provider = LimitsProvider()
    olds = {"table_name": "a", "region": REGION, "kind": "system", "key": "system", "spec": "rpm=1/s"}
    for news, moved in (({**olds, "table_name": "b"}, ["table_name"]), ({**olds, "region": "eu-west-1"}, ["region"]),
                        ({**olds, "table_name": rpc.UNKNOWN}, ["table_name"])):
        diff = provider.diff("system", olds, news)
        assert (diff.changes, diff.replaces, diff.delete_before_replace) == (True, moved, True)


def test_check_refuses_a_bad_item_naming_its_key():
    failures = LimitsProvider().check({}, {"kind": "entity", "key": "key-1", "spec": {"limits": {"gpt-4": "rpm=1/fortnight"}}}).failures
    assert [(f.property, f.reason) for f in failures] == [
        ("spec", "entity key-1: entities.key-1.limits.gpt-4: unknown period 'fortnight' in 'rpm=1/fortnight'; use one of s, min, hour, day")
    ]


def test_the_provider_pickles_by_reference_and_runs_in_a_fresh_process(admin, table_name, endpoint_url):
    serialized = serialize_provider(LimitsProvider())
    raw = base64.b64decode(serialized)
    assert b"pulumi_component.limits_resource" in raw and b"LimitsProvider" in raw
    assert len(raw) < 200  # a reference to an importable class, not its code
    assert isinstance(dill.loads(raw), LimitsProvider)
    # As the dynamic-provider plugin does: a new interpreter, the provider unpickled, then a create.
    item = item_props(SMALLEST, table_name, endpoint_url)["resource/gpt-4"]
    probe = textwrap.dedent(f"""
        import base64, dill, sys
        provider = dill.loads(base64.b64decode({serialized!r}))
        assert "pulumi_component.limits_resource" in sys.modules
        print(provider.create({item!r}).id)
    """)
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parent.parent)
    assert ran.returncode == 0 and ran.stdout.strip() == "resource/gpt-4", ran.stdout + ran.stderr
    assert admin.get_resource_defaults("gpt-4") == [Limit.per_minute("rpm", 100), Limit.per_minute("tpm", 10_000, burst=50_000)]


@pytest.fixture
def dependencies(monkeypatch):
    """The dependencies each resource registers with (the mock monitor drops them)."""
    seen: dict[str, list[str]] = {}
    register = component_mocks.RecordingMonitor.RegisterResource

    def recording(self, request):
        seen[request.name] = [urn.rsplit("::", 1)[1] for urn in request.dependencies]
        return register(self, request)

    monkeypatch.setattr(component_mocks.RecordingMonitor, "RegisterResource", recording, raising=False)
    return seen


def test_zae_limits_beside_the_component_under_mocks(dependencies):
    def program():
        limiter = ZaeLimiter("rate-limits", ZaeLimiterArgs(table_name="rate_limits", enable_aggregator=False))
        return ZaeLimits("limits", ZaeLimitsArgs(table_name=limiter.table_name, spec=SMALLEST, region="eu-west-1"))

    deployment = deploy(program, resolve=("items",))
    items = {r.name: r for r in deployment.resources if r.type.startswith("pulumi-python:dynamic/zae-limiter:")}
    assert {name: r.type.rsplit(":", 1)[1] for name, r in items.items()} == {
        "limits-system": "SystemDefaults",
        "limits-resource-gpt-4": "ResourceDefaults",
        "limits-entity-org-1": "Entity",
        "limits-entity-key-1": "Entity",
    }
    for r in items.values():
        assert r.custom and r.inputs["table_name"] == "rate_limits"  # the component's output, resolved
        assert r.inputs["region"] == "eu-west-1" and "endpoint_url" not in r.inputs
        assert isinstance(r.inputs["__provider"], str) and r.inputs["__provider"]
    assert items["limits-system"].inputs["spec"] == "rpm=1000/min"
    assert items["limits-resource-gpt-4"].inputs["spec"] == "rpm=100/min,tpm=10000/min:50000"
    assert items["limits-entity-key-1"].inputs["spec"] == {"parent": "org-1", "cascade": True, "limits": {"_default_": "rpm=50/min"}}
    assert (items["limits-entity-key-1"].inputs["kind"], items["limits-entity-key-1"].inputs["key"]) == ("entity", "key-1")
    # Children of the component, which is itself a resource of its own type; key-1 waits for its parent.
    urns = [u for u in deployment.urns if "dynamic/zae-limiter" in u]
    assert len(urns) == 4 and all("zae-limiter:index:ZaeLimits$pulumi-python:dynamic/zae-limiter:" in u for u in urns)
    assert [d for d in dependencies["limits-entity-key-1"] if d.startswith("limits-")] == ["limits-entity-org-1"]
    assert [d for d in dependencies["limits-entity-org-1"] if d.startswith("limits-")] == []
    assert sorted(deployment.exports["result.items"]) == sorted(f"{name}-1a2b3c4" for name in items)  # the mocks' ids


@pytest.mark.parametrize("form", ["yaml", "path", "mapping", "spec"])
def test_every_form_of_the_spec_hands_the_engine_the_same_inputs(form, tmp_path):
    import yaml

    path = tmp_path / "limits.yaml"
    path.write_text(SMALLEST)
    spec = {"yaml": SMALLEST, "path": path, "mapping": yaml.safe_load(SMALLEST), "spec": load_text(SMALLEST)}[form]
    reference = deploy(lambda: ZaeLimits("limits", ZaeLimitsArgs(table_name="t", spec=SMALLEST)))
    deployment = deploy(lambda: ZaeLimits("limits", ZaeLimitsArgs(table_name="t", spec=spec)))
    without_provider = lambda d: sorted((r.name, {k: v for k, v in r.inputs.items() if k != "__provider"}) for r in d.resources)
    assert without_provider(deployment) == without_provider(reference)


def test_a_bad_spec_fails_the_program_before_anything_is_registered():
    bad = SMALLEST.replace('"rpm=500/min"', '"rpm=500/mn"')
    with pytest.raises(SpecError, match="entities.org-1.limits.gpt-4: unknown period 'mn'"):
        deploy(lambda: ZaeLimits("limits", ZaeLimitsArgs(table_name="t", spec=bad)))
    with pytest.raises(ValidationError, match="spec: must be plain data"):
        deploy(lambda: ZaeLimits("limits", ZaeLimitsArgs(table_name="t", spec=pulumi.Output.from_input({}))))
    with pytest.raises(ValidationError, match=r"spec: 'limits.yaml' looks like a file name: pass Path\('limits.yaml'\)"):
        deploy(lambda: ZaeLimits("limits", ZaeLimitsArgs(table_name="t", spec="limits.yaml")))


FLAGGED = """\
resources:
  gpt-4: {limits: "rpm=100/min", schedule: [{cron: "0 9 * * MON-FRI", limits: "rpm=200/min"}]}
  legacy: {disabled: true}
  unused: {disabled: false}
entities:
  key-1:
    disabled: false
    limits:
      gpt-4: {limits: "rpm=20/min", disabled: true}
      embeddings: {disabled: true}
"""


def test_flags_and_schedules_through_the_provider(admin, table_name, endpoint_url):
    provider = LimitsProvider()
    props = item_props(FLAGGED, table_name, endpoint_url)
    # Within an item a false flag is an absent one (an item's flags are exactly those it names):
    # `unused` holds nothing, so it is no item; key-1's `disabled: false` is dropped.
    assert list(props) == ["resource/gpt-4", "resource/legacy", "entity/key-1"]
    assert props["resource/legacy"]["spec"] == {"disabled": True}
    assert props["entity/key-1"]["spec"] == {"limits": {"embeddings": {"disabled": True}, "gpt-4": {"limits": "rpm=20/min", "disabled": True}}}
    outs = {key: provider.create(item).outs for key, item in props.items()}
    assert outs["resource/legacy"]["applied"] == ["create disabled flag legacy (every entity)"]
    assert admin.is_disabled(resource="legacy") and admin.is_disabled("key-1", "gpt-4") and admin.is_disabled("key-1", "embeddings")
    assert admin.get_schedule(resource="gpt-4") == [("0 9 * * MON-FRI", [Limit.per_minute("rpm", 200)])]
    # A refresh reads each item back as it was given: no diff.
    for key, item in props.items():
        read = provider.read(key, outs[key])
        assert read.outs["spec"] == item["spec"], key
        assert provider.diff(key, read.outs, item).changes is False
    # An operator disables key-1 whole behind Pulumi's back: the refresh shows it, the update lifts it.
    admin.disable("key-1")
    read = provider.read("entity/key-1", outs["entity/key-1"])
    assert read.outs["spec"]["disabled"] is True and provider.diff("entity/key-1", read.outs, props["entity/key-1"]).changes is True
    assert provider.update("entity/key-1", read.outs, props["entity/key-1"]).outs["applied"] == ["delete disabled flag key-1"]
    assert not admin.is_disabled("key-1")
    # The flag's resource item deleted: the flag is lifted, and nothing is left of it.
    provider.delete("resource/legacy", outs["resource/legacy"])
    assert not admin.is_disabled(resource="legacy") and provider.read("resource/legacy", outs["resource/legacy"]).id == ""
