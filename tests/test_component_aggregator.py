"""The aggregator as a child ComponentResource (`ZaeLimiterAggregator`) of ZaeLimiter, the aliases that let a
stack deployed before it existed update in place, and inputs a program computes (Outputs) end to end."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pytest

from component_mocks import ACCOUNT, REGION, deploy
from pulumi_component import ZaeLimiter, ZaeLimiterArgs
from pulumi_component.aggregator import AGGREGATOR_TYPE_TOKEN, ZaeLimiterAggregator
from pulumi_component.aggregator import OUTPUT_KEYS as AGGREGATOR_OUTPUTS
from pulumi_component.component import OUTPUT_KEYS, TYPE_TOKEN
from zae_limiter import ValidationError

TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"

# The children of ZaeLimiter("limits") with alarms, as stacks deployed before the aggregator had a component
# of its own hold them: every one directly under the ZaeLimiter, with these types and logical names.
BEFORE = [
    ("aws:dynamodb/table:Table", "limits-table"),
    ("aws:sqs/queue:Queue", "limits-aggregator-dlq"),
    ("aws:cloudwatch/logGroup:LogGroup", "limits-aggregator-logs"),
    ("aws:iam/role:Role", "limits-aggregator-role"),
    ("aws:iam/rolePolicy:RolePolicy", "limits-aggregator-policy"),
    ("aws:lambda/function:Function", "limits-aggregator"),
    ("aws:lambda/eventSourceMapping:EventSourceMapping", "limits-aggregator-stream"),
    ("aws:iam/policy:Policy", "limits-acquire-policy"),
    ("aws:iam/policy:Policy", "limits-full-access-policy"),
    ("aws:iam/policy:Policy", "limits-read-only-policy"),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "limits-read-throttles"),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "limits-write-throttles"),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "limits-aggregator-errors"),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "limits-aggregator-duration"),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "limits-aggregator-iterator-age"),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "limits-aggregator-dlq"),
]
MOVED = {(kind, name) for kind, name in BEFORE if name.startswith("limits-aggregator")}


def with_alarms(**options):
    return deploy(lambda: ZaeLimiter("limits", ZaeLimiterArgs("rate_limits", enable_alarms=True, **options)), resolve=OUTPUT_KEYS)


def split(urn: str) -> tuple[str, str, str]:
    """(parent type, type, name) of a URN: `...::parent$type::name`."""
    qualified, _, name = urn.rpartition("::")
    chain = qualified.rpartition("::")[2].split("$")
    return (chain[-2] if len(chain) > 1 else ""), chain[-1], name


def test_the_aggregator_is_a_component_under_zaelimiter():
    deployment = with_alarms()
    (component,) = deployment.of_type(AGGREGATOR_TYPE_TOKEN)
    assert component.name == "limits-aggregator" and not component.custom
    (urn,) = [u for u in deployment.urns if split(u)[1:] == (AGGREGATOR_TYPE_TOKEN, "limits-aggregator")]
    assert split(urn)[0] == TYPE_TOKEN
    mine = {(split(u)[1], split(u)[2]) for u in deployment.urns if split(u)[0] == AGGREGATOR_TYPE_TOKEN}
    assert mine == MOVED
    assert deployment.result.aggregator.urn is not None


def test_the_aggregator_registers_its_outputs_and_zaelimiter_keeps_every_one_of_its_own():
    deployment = with_alarms()
    (registered,) = [v for u, v in deployment.registered_outputs.items() if split(u)[1] == AGGREGATOR_TYPE_TOKEN]
    function = deployment.one("aws:lambda/function:Function")
    assert set(registered) == set(AGGREGATOR_OUTPUTS)
    assert registered["function_name"] == function.outputs["name"] == "rate_limits-aggregator"
    assert registered["function_arn"] == function.outputs["arn"]
    assert registered["log_group_name"] == "/aws/lambda/rate_limits-aggregator"
    assert registered["dlq_url"] == deployment.one("aws:sqs/queue:Queue").outputs["url"]
    assert registered["role_arn"] == deployment.one("aws:iam/role:Role").outputs["arn"]
    (limiter,) = [v for u, v in deployment.registered_outputs.items() if split(u)[1] == TYPE_TOKEN]
    assert set(limiter) == set(OUTPUT_KEYS)
    for key in ("function_name", "function_arn", "log_group_name", "dlq_url"):
        assert limiter[key] == registered[key] == deployment.exports[f"result.{key}"], key


def test_a_stack_from_before_updates_in_place():
    """Every resource keeps its URN, or carries an alias to the one it had: the engine then updates it in
    place instead of creating a new one and deleting the old (the table's neighbours, the function and its
    mapping, the log group and its history, the alarms). The moved ones' inputs are unchanged
    (test_stack_description compares them with the template, test_component with their values)."""
    deployment = with_alarms()
    (limiter_urn,) = [u for u in deployment.urns if split(u)[1] == TYPE_TOKEN]
    children_type = limiter_urn.rpartition("::")[0].rpartition("::")[2].split("$")[-1]
    before = {f"{limiter_urn.split('::')[0]}::{limiter_urn.split('::')[1]}::{children_type}${kind}::{name}" for kind, name in BEFORE}
    now: set[str] = set()
    for urn in deployment.urns:
        parent, kind, name = split(urn)
        if not kind.startswith("aws:"):
            continue
        specs = deployment.aliases[urn]
        if (kind, name) in MOVED:
            assert parent == AGGREGATOR_TYPE_TOKEN, name
            (alias,) = specs
            # "the same name and type, under ZaeLimiter": an alias of the parent only.
            assert (alias.name, alias.type, alias.parent_urn, alias.no_parent) == ("", "", limiter_urn, False), name
            now.add(alias.urn)
        else:
            assert parent == TYPE_TOKEN and specs == [], name
            now.add(urn)
    assert now == before


def test_the_aggregator_component_itself_is_new_and_needs_no_alias():
    deployment = with_alarms()
    (urn,) = [u for u in deployment.urns if split(u)[1] == AGGREGATOR_TYPE_TOKEN]
    assert deployment.aliases[urn] == []


def test_without_the_aggregator_there_is_no_aggregator_component():
    deployment = deploy(lambda: ZaeLimiter("limits", ZaeLimiterArgs("rate_limits", enable_aggregator=False)), resolve=OUTPUT_KEYS)
    assert deployment.of_type(AGGREGATOR_TYPE_TOKEN) == []
    assert deployment.result.aggregator is None
    assert all(deployment.exports[f"result.{key}"] is None for key in ("function_name", "function_arn", "log_group_name", "dlq_url"))


def test_the_aggregator_on_its_own_beside_a_table_of_the_program():
    """Used directly, its children are named after it and carry no alias (there is nothing they moved from)."""

    def program():
        table = aws.dynamodb.Table("mine", name="rate_limits", stream_enabled=True, stream_view_type="NEW_AND_OLD_IMAGES",
                                   hash_key="PK", attributes=[{"name": "PK", "type": "S"}])
        return ZaeLimiterAggregator("usage", ZaeLimiterArgs("rate_limits"), table)

    deployment = deploy(program)
    names = sorted(r.name for r in deployment.custom if r.type != "aws:dynamodb/table:Table")
    assert names == ["usage", "usage-dlq", "usage-logs", "usage-policy", "usage-role", "usage-stream"]
    assert all(specs == [] for specs in deployment.aliases.values())
    mapping = deployment.one("aws:lambda/eventSourceMapping:EventSourceMapping")
    assert mapping.inputs["eventSourceArn"] == deployment.named("mine").outputs["streamArn"]


def test_the_aggregator_refuses_a_configuration_without_it():
    def program():
        table = aws.dynamodb.Table("mine", hash_key="PK", attributes=[{"name": "PK", "type": "S"}])
        ZaeLimiterAggregator("usage", ZaeLimiterArgs("rate_limits", enable_aggregator=False), table)

    with pytest.raises(ValidationError) as raised:
        deploy(program)
    assert raised.value.field == "enable_aggregator"


def _computed(value):
    return pulumi.Output.from_input(value).apply(lambda v: v)


def test_a_computed_table_name_tags_and_topic_reach_every_resource_and_output():
    """ZaeLimiterArgs takes Outputs for what a program computes: the table name (say, from a random suffix),
    the tags and the topic. The resources and every output are those of the same values given plainly."""
    plain = deploy(lambda: ZaeLimiter("limits", ZaeLimiterArgs(
        "rate_limits", enable_alarms=True, alarm_sns_topic_arn=TOPIC, tags={"team": "ml"})), resolve=OUTPUT_KEYS)
    computed = deploy(lambda: ZaeLimiter("limits", ZaeLimiterArgs(
        _computed("rate_limits"), enable_alarms=True, alarm_sns_topic_arn=_computed(TOPIC),
        tags=_computed({"team": "ml"}))), resolve=OUTPUT_KEYS)
    assert computed.shape() == plain.shape()
    assert computed.exports == plain.exports
    assert computed.exports["result.function_name"] == "rate_limits-aggregator"
    assert computed.exports["result.table_name"] == "rate_limits"
    alarms = computed.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert {a.inputs["name"] for a in alarms} >= {"rate_limits-read-throttles", "rate_limits-aggregator-errors"}
    assert all(a.inputs["alarmActions"] == [TOPIC] and a.inputs["tags"] == {"team": "ml"} for a in alarms)



def test_a_computed_table_name_that_breaks_dynamodbs_rule_fails_naming_the_field():
    """Known only when the engine resolves it, the name is checked then, with the same rule as a plain one."""
    with pytest.raises(ValidationError) as raised:
        deploy(lambda: ZaeLimiterArgs(_computed("no spaces allowed")), resolve=("table_name",))
    assert raised.value.field == "table_name"
    assert deploy(lambda: ZaeLimiterArgs(_computed("rate_limits")), resolve=("table_name",)).exports == {
        "result.table_name": "rate_limits"}
