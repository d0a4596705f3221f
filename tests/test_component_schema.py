"""The component for every Pulumi language: the schema the component-provider host infers from the Python
annotations (what `pulumi package add` generates SDKs from), the plugin process serving it, components
constructed through the host as another language's program would, and the YAML example against it.
The engine cannot run here (DESIGN section 10): no `pulumi package add`, no `pulumi up`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import grpc
import pulumi
import pytest
import yaml
from google.protobuf import empty_pb2
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from component_mocks import deploy
from pulumi_component import ZaeLimiter, ZaeLimiterArgs, provider_host
from pulumi_component.component import OUTPUT_KEYS, TYPE_TOKEN
from zae_limiter import __version__

ROOT = Path(__file__).resolve().parent.parent

# What a TypeScript, Go or YAML program sees: input name -> (schema type, plain). Plain inputs must be
# known when the component is constructed (they decide which resources exist); the others take Outputs.
INPUTS = {
    "tableName": ("string", False),
    "snapshotWindows": ("string", True),
    "snapshotRetentionDays": ("integer", True),
    "enableAggregator": ("boolean", True),
    "pitrRecoveryDays": ("integer", True),
    "logRetentionDays": ("integer", True),
    "lambdaMemoryMb": ("integer", True),
    "lambdaTimeoutS": ("integer", True),
    "enableAlarms": ("boolean", True),
    "alarmSnsTopicArn": ("string", False),
    "permissionBoundary": ("string", False),
    "roleNamePrefix": ("string", True),
    "deletionProtection": ("boolean", True),
    "tags": ("object", False),
}
OUTPUTS = ["tableName", "tableArn", "streamArn", "functionName", "functionArn", "logGroupName", "acquirePolicyArn",
           "fullAccessPolicyArn", "readOnlyPolicyArn", "dlqUrl"]
AGGREGATOR_OUTPUTS = {"functionName", "functionArn", "logGroupName", "dlqUrl"}  # absent without the aggregator


@pytest.fixture(scope="module")
def schema() -> dict:
    host = ComponentProvider(provider_host.COMPONENTS, provider_host.PACKAGE, version=__version__)
    return json.loads(host.schema)


def test_the_package_is_the_components_type_token(schema):
    assert provider_host.PACKAGE == "zae-limiter" and TYPE_TOKEN == "zae-limiter:index:ZaeLimiter"
    assert (schema["name"], schema["version"]) == ("zae-limiter", __version__)
    assert list(schema["resources"]) == [TYPE_TOKEN]
    assert schema["resources"][TYPE_TOKEN]["isComponent"] is True
    assert schema["types"] == {} and schema["dependencies"] == []


def test_the_inputs_their_types_and_what_is_required(schema):
    resource = schema["resources"][TYPE_TOKEN]
    inputs = resource["inputProperties"]
    assert {name: (spec["type"], spec.get("plain", False)) for name, spec in inputs.items()} == INPUTS
    assert inputs["tags"]["additionalProperties"]["type"] == "string"
    assert resource["requiredInputs"] == ["tableName"]
    assert all(spec.get("description") for spec in inputs.values())  # every field's docstring
    assert "3 to 255" in inputs["tableName"]["description"]


def test_the_outputs(schema):
    resource = schema["resources"][TYPE_TOKEN]
    assert list(resource["properties"]) == OUTPUTS
    assert [key for key in OUTPUT_KEYS] == [re.sub(r"([A-Z])", lambda m: "_" + m[1].lower(), name) for name in OUTPUTS]
    assert sorted(resource["required"]) == sorted(set(OUTPUTS) - AGGREGATOR_OUTPUTS)
    assert all(spec["type"] == "string" and spec.get("description") for spec in resource["properties"].values())
    assert resource["description"].startswith("A zae-limiter deployment")


def test_the_plugin_process_serves_the_schema(schema):
    """The repository's root as Pulumi runs it for `pulumi package add` (PulumiPlugin.yaml): `python <dir>
    <engine address>`. It serves the provider protocol on 127.0.0.1; GetSchema is what SDK generation asks."""
    manifest = yaml.safe_load((ROOT / "PulumiPlugin.yaml").read_text())
    assert manifest["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": "venv"}}
    assert (ROOT / "__main__.py").is_file()
    assert "-e .[deploy,limits]" in (ROOT / "requirements.txt").read_text().splitlines()
    plugin = subprocess.Popen([sys.executable, str(ROOT), "127.0.0.1:1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT.parent)
    try:
        port = plugin.stdout.readline().strip()
        assert port.isdigit(), plugin.stderr.read() if plugin.poll() is not None else port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            served = json.loads(stub.GetSchema(provider_pb2.GetSchemaRequest(version=0), timeout=60).schema)
            info = stub.GetPluginInfo(empty_pb2.Empty(), timeout=60)
        assert served == schema and info.version == __version__
    finally:
        plugin.terminate()
        plugin.wait(timeout=30)
        plugin.stdout.close()
        plugin.stderr.close()


def _computed(value):
    return pulumi.Output.from_input(value).apply(lambda v: v)


def test_a_component_constructed_through_the_host_is_the_python_components_twin():
    """Another language's `new ZaeLimiter(...)` arrives as a mapping of schema names, integers as floats and
    the table name and topic as Outputs (computed in that program): the resources are those of the Python
    component with the same settings."""
    host = ComponentProvider(provider_host.COMPONENTS, provider_host.PACKAGE, version=__version__)
    topic = "arn:aws:sns:us-east-1:123456789012:alerts"
    settings = dict(enable_alarms=True, lambda_memory_mb=512, pitr_recovery_days=7, tags={"team": "ml"})

    def through_host():
        inputs = {"tableName": _computed("rate_limits"), "enableAlarms": True, "lambdaMemoryMb": 512.0,
                  "pitrRecoveryDays": 7.0, "alarmSnsTopicArn": _computed(topic), "tags": {"team": _computed("ml")}}
        return host.construct("edge", TYPE_TOKEN, inputs, None)

    hosted = deploy(through_host)
    direct = deploy(lambda: ZaeLimiter("edge", ZaeLimiterArgs("rate_limits", alarm_sns_topic_arn=topic, **settings)))
    assert hosted.shape() == direct.shape()
    assert len([r for r in hosted.resources if r.type == "aws:cloudwatch/metricAlarm:MetricAlarm"]) == 6  # 2 table, 4 aggregator
    assert sorted(hosted.result.state) == sorted(OUTPUTS)


def test_a_computed_table_name_and_tags_give_the_resources_of_plain_ones():
    plain = deploy(lambda: ZaeLimiter("limits", ZaeLimiterArgs("rate_limits", enable_alarms=True, tags={"team": "ml"})))
    computed = deploy(lambda: ZaeLimiter("limits", ZaeLimiterArgs(_computed("rate_limits"), enable_alarms=True,
                                                                  tags=_computed({"team": "ml"}))))
    assert computed.shape() == plain.shape()
    function = computed.one("aws:lambda/function:Function").inputs
    assert function["name"] == "rate_limits-aggregator" and function["description"].endswith("table rate_limits from its stream")


def test_the_host_refuses_arguments_the_component_does_not_have():
    host = ComponentProvider(provider_host.COMPONENTS, provider_host.PACKAGE, version=__version__)
    with pytest.raises(Exception, match="Missing required input 'tableName'"):
        deploy(lambda: host.construct("edge", TYPE_TOKEN, {"enableAlarms": True}, None))
    with pytest.raises(Exception, match="lambda_memory_mb: must be a whole number from 128 to 10240, got 100"):
        deploy(lambda: host.construct("edge", TYPE_TOKEN, {"tableName": "t_1", "lambdaMemoryMb": 100.0}, None))


def test_the_yaml_example_uses_the_schemas_names(schema):
    program = yaml.safe_load((ROOT / "examples" / "pulumi-yaml" / "Pulumi.yaml").read_text())
    assert program["runtime"] == "yaml"
    assert (ROOT / "examples" / "pulumi-yaml" / program["packages"]["zae-limiter"] / "PulumiPlugin.yaml").is_file()
    resource = schema["resources"][TYPE_TOKEN]
    used = {name: r for name, r in program["resources"].items() if r["type"] == "zae-limiter:ZaeLimiter"}
    assert list(used) == ["limiter"]
    properties = used["limiter"]["properties"]
    assert set(properties) <= set(resource["inputProperties"]) and set(resource["requiredInputs"]) <= set(properties)
    for name, value in properties.items():
        if resource["inputProperties"][name].get("plain"):  # a plain input takes no Output
            assert "${" not in json.dumps(value), name
    referenced = set(re.findall(r"\$\{limiter\.(\w+)\}", json.dumps(program["outputs"])))
    assert referenced and referenced <= set(resource["properties"])
