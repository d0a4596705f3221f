"""Applying limits files on the embedded DynamoDB: what the table holds after, through the runtime's own
API; a second apply plans nothing; prune; an entity record changed in place keeps its limits and
buckets; a write that fails stops the apply and says what was and was not applied."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from conftest import REGION
from test_limits_spec_file import SMALLEST
from zae_limiter import EntityExistsError, Limit, RateLimitExceeded, ResourceDisabled, SyncRateLimiter
from zae_limiter.core import schema
from zae_limiter.limits_spec import ApplyFailed, apply_plan, load_text, plan_against, read_state


@pytest.fixture
def admin(endpoint_url: str, table_name: str, clock: Any) -> Iterator[SyncRateLimiter]:
    # As the CLI opens it (stored limits read fresh), on a clock only the test moves: bucket arithmetic exact.
    with SyncRateLimiter(table_name=table_name, region=REGION, endpoint_url=endpoint_url,
                         config_cache_seconds=0, clock=clock) as limiter:
        yield limiter


def apply_text(limiter: SyncRateLimiter, text: str, prune: bool = False) -> list[str]:
    planned = plan_against(limiter, load_text(text), prune)
    return [str(change) for change in apply_plan(limiter, planned)]


def every_item(dynamodb: Any, table_name: str) -> list[tuple[str, str]]:
    items = dynamodb.scan(TableName=table_name, ConsistentRead=True)["Items"]
    return sorted((item[schema.PK]["S"], item[schema.SK]["S"]) for item in items)


def test_the_smallest_file_applies_and_a_second_apply_plans_nothing(admin):
    assert apply_text(admin, SMALLEST) == [
        "create system defaults system",
        "create resource defaults gpt-4",
        "create entity org-1",
        "create entity limits org-1 / gpt-4",
        "create entity key-1",
        "create entity limits key-1 / _default_",
    ]
    assert admin.get_system_defaults() == [Limit.per_minute("rpm", 1000)]
    assert admin.get_resource_defaults("gpt-4") == [Limit.per_minute("rpm", 100), Limit.per_minute("tpm", 10_000, burst=50_000)]
    assert admin.get_limits("org-1", "gpt-4") == [Limit.per_minute("rpm", 500)]
    assert admin.get_limits("key-1") == [Limit.per_minute("rpm", 50)]
    key = admin.get_entity("key-1")
    assert (key.parent_id, key.cascade, key.name, key.metadata) == ("org-1", True, None, {})
    assert [child.entity_id for child in admin.get_children("org-1")] == ["key-1"]
    assert plan_against(admin, load_text(SMALLEST)).empty
    assert plan_against(admin, load_text(SMALLEST), prune=True).empty


def test_the_applied_limits_are_the_ones_acquire_uses(admin):
    apply_text(admin, SMALLEST)
    # Precedence: key-1's own `_default_` (rpm 50) wins over gpt-4's resource defaults; org-1 has gpt-4 limits
    # of its own (rpm 500) and, on another resource, falls back to the system defaults (rpm 1000). Never-used
    # buckets are full.
    assert admin.available("key-1", "gpt-4") == {"rpm": 50}
    assert admin.available("org-1", "gpt-4") == {"rpm": 500}
    assert admin.available("org-1", "other") == {"rpm": 1000}
    assert admin.available("solo", "gpt-4") == {"rpm": 100, "tpm": 50_000}  # no entity: the resource defaults
    # Cascade: key-1's whole capacity once, then it is empty, and the refusal lists org-1's limit too.
    with admin.acquire("key-1", "gpt-4", consume={"rpm": 50}):
        pass
    with pytest.raises(RateLimitExceeded) as refused:
        with admin.acquire("key-1", "gpt-4", consume={"rpm": 1}):
            pass
    assert [(s.entity_id, s.name, s.capacity) for s in refused.value.statuses] == [("key-1", "rpm", 50), ("org-1", "rpm", 500)]
    assert [s.entity_id for s in refused.value.exceeded] == ["key-1"]


def test_a_changed_record_keeps_its_limits_buckets_and_creation_time(admin, dynamodb, table_name):
    apply_text(admin, SMALLEST)
    created = admin.get_entity("key-1").created_at
    with admin.acquire("key-1", "gpt-4", consume={"rpm": 20}):
        pass
    before = every_item(dynamodb, table_name)
    bucket = dynamodb.get_item(TableName=table_name, Key=schema.bucket_key("key-1", "gpt-4"), ConsistentRead=True)["Item"]
    changed = SMALLEST.replace("    cascade: true\n", "    cascade: true\n    name: Key One\n    metadata: {owner: ml}\n")
    assert apply_text(admin, changed) == ["change entity key-1"]
    key = admin.get_entity("key-1")
    assert (key.name, key.metadata, key.parent_id, key.cascade, key.created_at) == ("Key One", {"owner": "ml"}, "org-1", True, created)
    def unversioned(items):  # a change stamps a new configuration version (`cv`) on the entity's items
        return [{k: v for k, v in item.items() if k != schema.VERSION_ATTR} for item in items]

    assert every_item(dynamodb, table_name) == before  # the same items: limits and buckets kept
    assert admin.get_limits("key-1") == [Limit.per_minute("rpm", 50)]
    after = dynamodb.get_item(TableName=table_name, Key=schema.bucket_key("key-1", "gpt-4"), ConsistentRead=True)["Item"]
    assert unversioned([after]) == unversioned([bucket])
    assert schema.version_of(after) > schema.version_of(bucket)  # so clients holding the old record read it again
    # And back: name and metadata removed from the record, not left behind.
    assert apply_text(admin, SMALLEST) == ["change entity key-1"]
    record = dynamodb.get_item(TableName=table_name, Key=schema.meta_key("key-1"), ConsistentRead=True)["Item"]
    assert "name" not in record and "metadata" not in record and admin.get_entity("key-1").name is None


def test_a_new_parent_moves_the_entity_in_the_parent_index(admin, dynamodb, table_name):
    apply_text(admin, SMALLEST)
    moved = SMALLEST + "  org-2:\n    limits: {gpt-4: \"rpm=5/min\"}\n"
    moved = moved.replace("    parent: org-1\n", "    parent: org-2\n")
    assert apply_text(admin, moved) == ["create entity org-2", "create entity limits org-2 / gpt-4", "change entity key-1"]
    assert [e.entity_id for e in admin.get_children("org-2")] == ["key-1"]
    assert admin.get_children("org-1") == []
    # Cascade now takes from org-2, whose rpm for gpt-4 is 5: all of it, then org-2 refuses.
    with admin.acquire("key-1", "gpt-4", consume={"rpm": 5}):
        pass
    with pytest.raises(RateLimitExceeded) as refused:
        with admin.acquire("key-1", "gpt-4", consume={"rpm": 1}):
            pass
    assert [(s.entity_id, s.name) for s in refused.value.exceeded] == [("org-2", "rpm")]
    # No parent at all: out of the parent index, and the record keeps no parent key behind.
    alone = moved.replace("    parent: org-2\n    cascade: true\n", "")
    assert apply_text(admin, alone) == ["change entity key-1"]
    assert admin.get_children("org-2") == [] and admin.get_entity("key-1").parent_id is None
    record = dynamodb.get_item(TableName=table_name, Key=schema.meta_key("key-1"), ConsistentRead=True)["Item"]
    assert not {schema.GSI1PK, schema.GSI1SK, "parent_id"} & set(record)


def test_prune_deletes_what_the_file_no_longer_names(admin, dynamodb, table_name):
    apply_text(admin, SMALLEST + "  stray:\n    parent: org-1\n    limits: {gpt-4: \"rpm=1/s\"}\n")
    with admin.acquire("stray", "gpt-4", consume={"rpm": 1}):
        pass
    admin.set_limits("key-1", [Limit.per_second("rpm", 1)], "other")  # outside the file
    admin.set_resource_defaults("old", [Limit.per_second("rpm", 1)])
    # Without prune, what the file does not name stays.
    assert plan_against(admin, load_text(SMALLEST)).empty
    assert apply_text(admin, SMALLEST, prune=True) == [
        "delete entity limits key-1 / other",
        "delete entity stray",
        "delete resource defaults old",
    ]
    assert not [key for key in every_item(dynamodb, table_name) if key[0] == schema.entity_pk("stray")]  # bucket too
    assert admin.get_limits("key-1", "other") == [] and admin.get_resource_defaults("old") == []
    assert plan_against(admin, load_text(SMALLEST), prune=True).empty
    # A file that names nothing, pruned: the table is empty of limits and entities (children went first).
    assert apply_text(admin, "{}", prune=True) == [
        "delete entity key-1",
        "delete entity org-1",
        "delete resource defaults gpt-4",
        "delete system defaults system",
    ]
    state = read_state(admin, load_text("{}"), prune=True)
    assert (state.system, dict(state.resources), dict(state.entities), dict(state.entity_limits)) == (None, {}, {}, {})


def test_a_failed_write_stops_the_apply_and_says_what_was_applied(admin, endpoint_url, table_name):
    planned = plan_against(admin, load_text(SMALLEST))
    # Between plan and apply another administrator creates key-1: its create fails.
    with SyncRateLimiter(table_name=table_name, region=REGION, endpoint_url=endpoint_url) as other:
        other.create_entity("key-1", name="theirs")
    with pytest.raises(ApplyFailed) as failed:
        apply_plan(admin, planned)
    assert [str(c) for c in failed.value.applied] == [
        "create system defaults system", "create resource defaults gpt-4", "create entity org-1", "create entity limits org-1 / gpt-4",
    ]
    assert str(failed.value.failed) == "create entity key-1"
    assert [str(c) for c in failed.value.pending] == ["create entity limits key-1 / _default_"]
    assert isinstance(failed.value.cause, EntityExistsError)
    assert "4 of 6 writes were applied before it, 1 were not attempted" in str(failed.value)
    # The table holds exactly what was applied; theirs is untouched.
    assert admin.get_limits("org-1", "gpt-4") == [Limit.per_minute("rpm", 500)]
    assert admin.get_limits("key-1") == [] and admin.get_entity("key-1").name == "theirs"
    # Planning again shows what is left: key-1's record (the file's, not theirs) and its limits.
    assert [str(c) for c in plan_against(admin, load_text(SMALLEST)).changes] == [
        "change entity key-1", "create entity limits key-1 / _default_",
    ]


def test_a_file_refused_by_the_table_writes_nothing(admin, dynamodb, table_name):
    from zae_limiter.limits_spec import SpecError

    with pytest.raises(SpecError, match="entities.key-1.parent: entity 'org-9' is neither"):
        plan_against(admin, load_text(SMALLEST.replace("parent: org-1", "parent: org-9")))
    assert every_item(dynamodb, table_name) == []


# -- the quota model's keys ----------------------------------------------------------------------
QUOTA_TEXT = """\
resources:
  gpt-4:
    limits: "rpm=100/min"
    schedule: [{cron: "0 9 * * MON-FRI", limits: "rpm=200/min"}]
  legacy: {disabled: true}
entities:
  org-1:
    limits: {gpt-4: "rpm=500/min, soft budget=50000000 per month"}
  key-1:
    parent: org-1
    limits:
      gpt-4: {limits: "rpm=20/min", disabled: true}
      embeddings: {disabled: true}
  key-2: {disabled: true}
"""


def refused(limiter: SyncRateLimiter, entity_id: str, resource: str) -> bool:
    try:
        with limiter.acquire(entity_id, resource, consume={"rpm": 1}):
            return False
    except ResourceDisabled:
        return True


def test_flags_schedules_quotas_and_soft_limits_apply_and_a_second_apply_plans_nothing(admin, clock):
    # The clock reads Friday 2027-01-15 08:00 UTC: gpt-4's schedule next fires at 09:00.
    assert apply_text(admin, QUOTA_TEXT) == [
        "create resource defaults gpt-4",
        "create disabled flag legacy (every entity)",
        "create entity key-2",  # parents first, then by id
        "create disabled flag key-2",
        "create entity org-1",
        "create entity limits org-1 / gpt-4",
        "create entity key-1",
        "create entity limits key-1 / gpt-4",
        "create disabled flag key-1 / embeddings",
        "create disabled flag key-1 / gpt-4",
    ]
    assert admin.get_schedule(resource="gpt-4") == [("0 9 * * MON-FRI", [Limit.per_minute("rpm", 200)])]
    by_name = sorted(admin.get_limits("org-1", "gpt-4"), key=lambda limit: limit.name)
    assert by_name == [Limit.quota("budget", 50_000_000, every="month", soft=True), Limit.per_minute("rpm", 500)]
    assert [admin.is_disabled(resource="legacy"), admin.is_disabled("key-2"), admin.is_disabled("key-1", "gpt-4"),
            admin.is_disabled("key-1", "embeddings"), admin.is_disabled("key-1"), admin.is_disabled("org-1", "gpt-4")] == [
        True, True, True, True, False, False]
    assert refused(admin, "org-1", "legacy") and refused(admin, "key-2", "gpt-4") and refused(admin, "key-1", "gpt-4")
    assert not refused(admin, "nobody", "gpt-4") and not refused(admin, "org-1", "gpt-4")
    assert plan_against(admin, load_text(QUOTA_TEXT)).empty
    assert plan_against(admin, load_text(QUOTA_TEXT), prune=True).empty
    # The schedule as applied is the one in force: at 09:00 a nobody's gpt-4 limit is the entry's rpm 200.
    assert admin.get_effective_limits("nobody", "gpt-4") == [Limit.per_minute("rpm", 100)]
    clock.advance(3600)
    assert admin.get_effective_limits("nobody", "gpt-4") == [Limit.per_minute("rpm", 200)]
    assert plan_against(admin, load_text(QUOTA_TEXT)).empty  # the read-back is the file's, whatever is in force


def test_flags_the_file_does_not_name_stay_until_prune_and_false_lifts_one(admin):
    apply_text(admin, QUOTA_TEXT)
    admin.disable("org-1")  # an operator, behind the file's back
    admin.disable("key-1", "claude")
    assert plan_against(admin, load_text(QUOTA_TEXT)).empty
    assert apply_text(admin, QUOTA_TEXT, prune=True) == ["delete disabled flag key-1 / claude", "delete disabled flag org-1"]
    assert not admin.is_disabled("org-1") and not admin.is_disabled("key-1", "claude")
    lifted = QUOTA_TEXT.replace("key-2: {disabled: true}", "key-2: {disabled: false}")
    assert apply_text(admin, lifted) == ["delete disabled flag key-2"]
    assert not admin.is_disabled("key-2") and not refused(admin, "key-2", "gpt-4")


def test_prune_removes_schedules_and_flags_the_file_no_longer_names(admin, dynamodb, table_name):
    apply_text(admin, QUOTA_TEXT)
    plain = 'resources: {gpt-4: "rpm=100/min"}\nentities:\n  key-1: {parent: org-1, limits: {gpt-4: "rpm=20/min"}}\n  org-1: {}\n'
    # The schedule goes with no prune (the file names gpt-4's limits, without one); the flags stay without it.
    assert apply_text(admin, plain) == ["change resource defaults gpt-4"]
    assert admin.get_schedule(resource="gpt-4") == [] and admin.get_resource_defaults("gpt-4") == [Limit.per_minute("rpm", 100)]
    assert admin.is_disabled("key-1", "gpt-4") and admin.is_disabled(resource="legacy")
    assert apply_text(admin, plain, prune=True) == [
        "delete entity limits org-1 / gpt-4",
        "delete disabled flag key-1 / embeddings",
        "delete disabled flag key-1 / gpt-4",
        "delete entity key-2",
        "delete disabled flag legacy (every entity)",
    ]
    assert not admin.is_disabled("key-1", "gpt-4") and not admin.is_disabled(resource="legacy")
    assert admin.get_limits("key-1", "gpt-4") == [Limit.per_minute("rpm", 20)]  # the limits stay: the file names them
    # A flag lifted leaves no bare item behind (the runtime's enable deletes it).
    assert (schema.resource_defaults_key("legacy")[schema.PK]["S"], schema.DEFAULTS_SK) not in every_item(dynamodb, table_name)
    assert plan_against(admin, load_text(plain), prune=True).empty


def test_read_state_holds_the_flags_and_schedules(admin):
    apply_text(admin, QUOTA_TEXT)
    state = read_state(admin, load_text("{}"), prune=True)
    assert state.disabled == {(None, "legacy"), ("key-1", "gpt-4"), ("key-1", "embeddings"), ("key-2", None)}
    assert state.resources["gpt-4"].schedule == (("0 9 * * MON-FRI", (Limit.per_minute("rpm", 200),)),)
    assert "embeddings" not in state.entity_limits["key-1"]  # a flag alone holds no limits
