"""The plan (pure): a limits file against a table's state -> the ordered writes. No table here: the state
is written out, so each expected plan follows from the rules in zae_limiter/limits_spec/plan.py."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from zae_limiter import Entity, Limit
from zae_limiter.limits_spec import EntityRecord, SpecError, TableState, load_text, plan
from zae_limiter.limits_spec.model import CHANGE, CREATE, DELETE, DISABLED, ENTITY, ENTITY_LIMITS, RESOURCE, SYSTEM, Change, stored

from test_limits_spec_file import SMALLEST

RPM_1000 = stored([Limit.per_minute("rpm", 1000)])
GPT4 = stored([Limit.per_minute("rpm", 100), Limit.per_minute("tpm", 10_000, burst=50_000)])
CREATED = datetime(2026, 1, 1, tzinfo=timezone.utc)


def entity(entity_id: str, parent: str | None = None, cascade: bool = False, **fields) -> Entity:
    return Entity(entity_id, parent_id=parent, cascade=cascade, created_at=CREATED, **fields)


def applied_state() -> TableState:
    """What the table holds once the smallest file is applied."""
    return TableState(
        system=RPM_1000,
        resources={"gpt-4": GPT4},
        entities={"org-1": entity("org-1"), "key-1": entity("key-1", "org-1", True)},
        entity_limits={"org-1": {"gpt-4": stored([Limit.per_minute("rpm", 500)])}, "key-1": {"_default_": stored([Limit.per_minute("rpm", 50)])}},
    )


def steps(planned) -> list[str]:
    return [str(change) for change in planned.changes]


def test_against_an_empty_table_everything_is_created_parents_first():
    planned = plan(load_text(SMALLEST), TableState())
    assert planned.changes == (
        Change(CREATE, SYSTEM, after=RPM_1000),
        Change(CREATE, RESOURCE, resource="gpt-4", after=GPT4),
        Change(CREATE, ENTITY, "org-1", after=EntityRecord(None, None, False, {})),
        Change(CREATE, ENTITY_LIMITS, "org-1", "gpt-4", after=stored([Limit.per_minute("rpm", 500)])),
        Change(CREATE, ENTITY, "key-1", after=EntityRecord(None, "org-1", True, {})),
        Change(CREATE, ENTITY_LIMITS, "key-1", "_default_", after=stored([Limit.per_minute("rpm", 50)])),
    )
    assert planned.summary() == "6 to create, 0 to change, 0 to delete"


def test_against_the_table_it_made_nothing_is_planned():
    assert plan(load_text(SMALLEST), applied_state(), prune=True).empty
    assert plan(load_text(SMALLEST), applied_state()).summary() == "no changes"


def test_a_deep_chain_listed_children_first_is_created_parents_first():
    spec = load_text("entities:\n  c: {parent: b}\n  b: {parent: a}\n  a: {}\n  z: {}\n")
    assert steps(plan(spec, TableState())) == ["create entity a", "create entity z", "create entity b", "create entity c"]


def test_changes_are_what_differs_and_nothing_else():
    text = SMALLEST.replace("tpm=10000/min:50000", "tpm=10000/min:60000").replace(
        "  org-1:\n", "  org-1:\n    name: Org One\n    metadata: {tier: gold}\n"
    )
    planned = plan(load_text(text), applied_state())
    assert planned.changes == (
        Change(CHANGE, RESOURCE, resource="gpt-4", before=GPT4,
               after=stored([Limit.per_minute("rpm", 100), Limit.per_minute("tpm", 10_000, burst=60_000)])),
        Change(CHANGE, ENTITY, "org-1", before=EntityRecord(None, None, False, {}),
               after=EntityRecord("Org One", None, False, {"tier": "gold"})),
    )


def test_the_same_limits_in_another_order_or_spelling_are_no_change():
    text = SMALLEST.replace('"rpm=100/min,tpm=10000/min:50000"', '"tpm = 10000/60s:50000, rpm=100/1min"')
    assert plan(load_text(text), applied_state()).empty


def test_the_file_manages_an_entity_record_whole():
    # An entity named without name, parent or metadata: the file says it has none.
    state = applied_state()
    state.entities["org-1"] = entity("org-1", name="Old", metadata={"a": "b"})  # type: ignore[index]
    assert plan(load_text(SMALLEST), state).changes == (
        Change(CHANGE, ENTITY, "org-1", before=EntityRecord("Old", None, False, {"a": "b"}), after=EntityRecord(None, None, False, {})),
    )


def test_without_prune_nothing_is_deleted():
    state = applied_state()
    state.entities["stray"] = entity("stray")  # type: ignore[index]
    state.entity_limits["key-1"]["gpt-4"] = GPT4  # type: ignore[index]
    state.resources["other"] = GPT4  # type: ignore[index]
    assert plan(load_text(SMALLEST), state).empty
    assert plan(load_text('resources: {gpt-4: "rpm=1/s"}'), state).count(DELETE) == 0


def test_prune_deletes_what_the_file_no_longer_names_children_first():
    state = TableState(
        system=RPM_1000,
        resources={"gpt-4": GPT4, "old": GPT4},
        entities={
            "org-1": entity("org-1"),
            "key-1": entity("key-1", "org-1", True),
            "team": entity("team"),
            "team-a": entity("team-a", "team"),
            "team-a-1": entity("team-a-1", "team-a"),
        },
        entity_limits={
            "key-1": {"_default_": RPM_1000, "gpt-4": GPT4},  # gpt-4 is no longer in the file
            "team-a": {"x": RPM_1000},  # goes with its entity
            "ghost": {"y": RPM_1000},  # limits stored for an id that has no record
        },
    )
    spec = load_text("resources: {gpt-4: " + '"rpm=100/min,tpm=10000/min:50000"' + "}\nentities:\n  key-1: {parent: org-1, cascade: true, "
                     'limits: {_default_: "rpm=1000/min"}}\n')
    assert steps(plan(spec, state, prune=True)) == [
        "delete entity limits ghost / y",
        "delete entity limits key-1 / gpt-4",
        "delete entity team-a-1",
        "delete entity team-a",
        "delete entity team",
        "delete resource defaults old",
        "delete system defaults system",
    ]  # org-1 is key-1's parent: left alone whole (its record and limits are not the file's)
    team_a = [c for c in plan(spec, state, prune=True).changes if c.entity_id == "team-a"][0]
    assert team_a.note == "with its stored limits (x) and its buckets" and team_a.before == EntityRecord(None, "team", False, {})


def test_an_entity_moves_to_its_new_parent_before_its_old_parent_is_pruned():
    state = TableState(entities={"old": entity("old"), "key": entity("key", "old", True)})
    spec = load_text("entities:\n  new: {}\n  key: {parent: new, cascade: true}\n")
    assert steps(plan(spec, state, prune=True)) == ["create entity new", "change entity key", "delete entity old"]


def test_the_ancestors_of_named_entities_are_never_pruned():
    state = TableState(
        entities={"root": entity("root"), "org": entity("org", "root"), "other": entity("other")},
        entity_limits={"root": {"_default_": RPM_1000}, "org": {"gpt-4": GPT4}},
    )
    spec = load_text("entities: {key: {parent: org}}\n")
    assert steps(plan(spec, state, prune=True)) == ["create entity key", "delete entity other"]


def test_a_parent_that_exists_nowhere_is_refused_with_its_path():
    with pytest.raises(SpecError) as refused:
        plan(load_text("entities: {key-1: {parent: org-9}}\n"), TableState())
    assert refused.value.problems == [("entities.key-1.parent", "entity 'org-9' is neither in this file nor in the table")]
    # In the table is enough.
    assert steps(plan(load_text("entities: {key-1: {parent: org-9}}\n"), TableState(entities={"org-9": entity("org-9")}))) == [
        "create entity key-1"
    ]


def test_a_cycle_through_the_table_is_refused():
    # The table holds b -> a; the file makes a's parent b: a -> b -> a.
    state = TableState(entities={"a": entity("a"), "b": entity("b", "a")})
    with pytest.raises(SpecError) as refused:
        plan(load_text("entities: {a: {parent: b}}\n"), state)
    assert refused.value.problems == [("entities.a.parent", "parents would form a cycle: a -> b -> a")]
    # The file re-parenting b too breaks the cycle.
    assert steps(plan(load_text("entities: {a: {parent: b}, b: {}}\n"), state)) == ["change entity b", "change entity a"]


# -- schedules and disabled flags ------------------------------------------------------------------
FLAGGED = """\
resources:
  gpt-4: {limits: "rpm=100/min", schedule: [{cron: "0 9 * * MON-FRI", limits: "rpm=200/min"}]}
  legacy: {disabled: true}
entities:
  org-1: {disabled: true}
  key-1:
    limits:
      gpt-4: {limits: "rpm=20/min", disabled: true}
      embeddings: {disabled: false}
"""
GPT4_SCHEDULED = stored([Limit.per_minute("rpm", 100)], [("0 9 * * MON-FRI", [Limit.per_minute("rpm", 200)])])


def flagged_state(**overrides) -> TableState:
    """What the table holds once FLAGGED is applied."""
    fields = dict(
        resources={"gpt-4": GPT4_SCHEDULED},
        entities={"org-1": entity("org-1"), "key-1": entity("key-1")},
        entity_limits={"key-1": {"gpt-4": stored([Limit.per_minute("rpm", 20)])}},
        disabled=frozenset({(None, "legacy"), ("org-1", None), ("key-1", "gpt-4")}),
    )
    return TableState(**{**fields, **overrides})


def test_flags_are_set_after_their_levels_and_entities():
    assert plan(load_text(FLAGGED), TableState()).changes == (
        Change(CREATE, RESOURCE, resource="gpt-4", after=GPT4_SCHEDULED),
        Change(CREATE, DISABLED, None, "legacy", after=True),
        Change(CREATE, ENTITY, "key-1", after=EntityRecord(None, None, False, {})),
        Change(CREATE, ENTITY_LIMITS, "key-1", "gpt-4", after=stored([Limit.per_minute("rpm", 20)])),
        Change(CREATE, DISABLED, "key-1", "gpt-4", after=True),  # embeddings: false, and the table has no flag
        Change(CREATE, ENTITY, "org-1", after=EntityRecord(None, None, False, {})),
        Change(CREATE, DISABLED, "org-1", None, after=True),
    )
    targets = [c.target for c in plan(load_text(FLAGGED), TableState()).changes if c.kind == DISABLED]
    assert targets == ["legacy (every entity)", "key-1 / gpt-4", "org-1"]


def test_against_the_table_it_made_flags_and_schedules_plan_nothing():
    assert plan(load_text(FLAGGED), flagged_state()).empty
    assert plan(load_text(FLAGGED), flagged_state(), prune=True).empty


def test_a_schedule_is_part_of_its_limits():
    # Dropped from the file: the level's limits change (set_limits without a schedule removes it), no prune needed.
    text = FLAGGED.replace('{limits: "rpm=100/min", schedule: [{cron: "0 9 * * MON-FRI", limits: "rpm=200/min"}]}', '"rpm=100/min"')
    assert plan(load_text(text), flagged_state()).changes == (
        Change(CHANGE, RESOURCE, resource="gpt-4", before=GPT4_SCHEDULED, after=stored([Limit.per_minute("rpm", 100)])),
    )
    # Another time is a change; the same entries in another order are not.
    moved = load_text(FLAGGED.replace("0 9 * * MON-FRI", "0 10 * * MON-FRI"))
    assert steps(plan(moved, flagged_state())) == ["change resource defaults gpt-4"]
    two = '{limits: "rpm=1/s", schedule: [{cron: "0 9 * * *", limits: "rpm=2/s"}, {cron: "0 18 * * *", limits: "rpm=3/s"}]}'
    swapped = two.replace('"0 9 * * *", limits: "rpm=2/s"', "X").replace('"0 18 * * *", limits: "rpm=3/s"', '"0 9 * * *", limits: "rpm=2/s"')
    swapped = swapped.replace("X", '"0 18 * * *", limits: "rpm=3/s"')
    assert load_text(f"system: {two}\n").system == load_text(f"system: {swapped}\n").system


def test_a_flag_the_file_does_not_name_is_left_alone_unless_pruning():
    state = flagged_state(disabled=flagged_state().disabled | {("key-1", None), ("key-1", "claude"), (None, "gpt-4"), ("ghost", "x")})
    assert plan(load_text(FLAGGED), state).empty
    assert steps(plan(load_text(FLAGGED), state, prune=True)) == [
        "delete disabled flag ghost / x",
        "delete disabled flag key-1",
        "delete disabled flag key-1 / claude",
        "delete disabled flag gpt-4 (every entity)",
    ]


def test_disabled_false_lifts_a_flag_without_prune():
    state = flagged_state(disabled=flagged_state().disabled | {("key-1", "embeddings")})
    assert plan(load_text(FLAGGED), state).changes == (Change(DELETE, DISABLED, "key-1", "embeddings", before=True),)
    text = FLAGGED.replace("org-1: {disabled: true}", "org-1: {disabled: false}").replace("legacy: {disabled: true}", "legacy: {disabled: false}")
    assert steps(plan(load_text(text), flagged_state())) == ["delete disabled flag legacy (every entity)", "delete disabled flag org-1"]


def test_a_pruned_entitys_flags_go_with_it_and_a_pruned_resources_flag_is_lifted():
    assert steps(plan(load_text("{}"), flagged_state(), prune=True)) == [
        "delete entity key-1",
        "delete entity org-1",
        "delete resource defaults gpt-4",
        "delete disabled flag legacy (every entity)",
    ]
