"""Limits files: the format (DESIGN 16), its shipped JSON Schema, and every kind of bad key refused whole
with the path of the key. Pure: no table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from zae_limiter import Limit
from zae_limiter.limits_spec import EntitySpec, LimitsSpec, SpecError, from_document, json_schema, load_file, load_text, to_document
from zae_limiter.limits_spec.model import stored

ROOT = Path(__file__).resolve().parent.parent

# DESIGN section 16's smallest file, exactly as written there.
SMALLEST = """\
system: "rpm=1000/min"
resources:
  gpt-4: "rpm=100/min,tpm=10000/min:50000"
entities:
  org-1:
    limits: {gpt-4: "rpm=500/min"}
  key-1:
    parent: org-1
    cascade: true
    limits: {_default_: "rpm=50/min"}
"""


def test_the_smallest_file_reads_as_written():
    spec = load_text(SMALLEST)
    assert spec == LimitsSpec(
        system=stored([Limit.per_minute("rpm", 1000)]),
        resources={"gpt-4": stored([Limit.per_minute("rpm", 100), Limit.per_minute("tpm", 10_000, burst=50_000)])},
        entities={
            "org-1": EntitySpec("org-1", limits={"gpt-4": stored([Limit.per_minute("rpm", 500)])}),
            "key-1": EntitySpec("key-1", parent_id="org-1", cascade=True, limits={"_default_": stored([Limit.per_minute("rpm", 50)])}),
        },
    )


def test_the_long_form_and_every_entity_field():
    spec = load_text(
        """
version: 1
system: {limits: "rpm=10/s"}
entities:
  org-1:
    name: Org One
    metadata: {tier: gold, region: eu}
  key-1:
    parent: org-1
    limits:
      gpt-4: {limits: "rpm=20/min, tpm = 100/5min:300"}
  bare:
"""
    )
    assert spec.system == stored([Limit.per_second("rpm", 10)])
    assert spec.entities["org-1"] == EntitySpec("org-1", name="Org One", metadata={"tier": "gold", "region": "eu"})
    assert spec.entities["key-1"].limits["gpt-4"] == stored([Limit.per_minute("rpm", 20), Limit("tpm", 300, 100, 300)])
    assert spec.entities["bare"] == EntitySpec("bare")
    assert spec.resources == {}


def test_a_spec_reads_back_from_its_document_unchanged():
    spec = load_text(SMALLEST + '  solo: {name: "S", metadata: {a: "1"}, limits: {x: "a=1.5/s:2.25,b=7/3h"}}\n')
    document = to_document(spec)
    assert from_document(document) == spec
    assert document["resources"] == {"gpt-4": "rpm=100/min,tpm=10000/min:50000"}  # canonical text
    assert document["entities"]["key-1"] == {"parent": "org-1", "cascade": True, "limits": {"_default_": "rpm=50/min"}}
    assert json.loads(json.dumps(document)) == document  # plain data: what a Pulumi resource keeps


def test_the_shipped_schema_is_a_valid_json_schema_that_accepts_the_smallest_file():
    import yaml

    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load(SMALLEST), schema, cls=jsonschema.Draft202012Validator)
    assert schema == json.loads((ROOT / "zae_limiter" / "limits_spec" / "schema.json").read_text())


def test_load_file_names_the_file(tmp_path):
    path = tmp_path / "limits.yaml"
    path.write_text('system: "rpm=1/s"\n')
    assert load_file(path).system == stored([Limit.per_second("rpm", 1)])
    path.write_text('system: "rpm=1/fortnight"\n')
    with pytest.raises(SpecError) as refused:
        load_file(path)
    assert str(refused.value).startswith(f"{path}: system: unknown period 'fortnight'")
    with pytest.raises(SpecError, match="cannot read it"):
        load_file(tmp_path / "missing.yaml")


BAD = [
    # (file, path of the bad key, part of the message)
    ("colour: blue\n", "colour", "unknown key; expected one of: entities, resources, system, version"),
    ("version: 2\n", "version", "must be 1"),
    ("system: 5\n", "system", "must be limit text such as rpm=100/min"),
    ('system: ""\n', "system", "must not be empty"),
    ('system: "rpm=100/mn"\n', "system", "unknown period 'mn'"),
    ('system: "rpm=100"\n', "system", "cannot read 'rpm=100'"),
    ('system: "rpm=1/s,rpm=2/s"\n', "system", "limit 'rpm' appears twice"),
    ('system: "rpm=-1/s"\n', "system", "rpm.rate: must be greater than 0"),
    ('system: "1rpm=1/s"\n', "system", "name: a limit name is a letter or '_'"),
    ("system: {limit: rpm=1/s}\n", "system.limit", "unknown key; expected one of: limits, schedule"),
    ("system: {}\n", "system", "the long form needs `limits: TEXT`"),
    ("resources: [a]\n", "resources", "must be a mapping, got a list"),
    ('resources: {"a#b": "rpm=1/s"}\n', "resources.a#b", "must not contain '#'"),
    ('entities: {key-1: {limits: {gpt-4: "rpm=500/mn"}}}\n', "entities.key-1.limits.gpt-4", "unknown period 'mn'"),
    ('entities: {key-1: {limits: {gpt-4: 500}}}\n', "entities.key-1.limits.gpt-4", "got a number (quote it in YAML)"),
    ("entities: {key-1: {parnt: org-1}}\n", "entities.key-1.parnt", "expected one of: cascade, disabled, limits, metadata, name, parent"),
    ("entities: {123: {}}\n", 'entities."123"', "must be a string, got int (quote it in YAML)"),
    ("entities: {no: {}}\n", 'entities."False"', "must be a string, got bool (quote it in YAML)"),
    ('entities: {"": {}}\n', 'entities.""', "must not be empty"),
    (f"entities: {{{'k' * 257}: {{}}}}\n", f"entities.{'k' * 257}", "must be at most 256 characters"),
    ("entities: {key-1: {parent: ''}}\n", "entities.key-1.parent", "must not be empty"),
    ("entities: {key-1: {parent: key-1}}\n", "entities.key-1.parent", "an entity cannot be its own parent"),
    ("entities: {key-1: {cascade: true}}\n", "entities.key-1.cascade", "cascade: true needs a parent"),
    ("entities: {key-1: {parent: o, cascade: 'yes'}, o: {}}\n", "entities.key-1.cascade", "must be true or false, got a string"),
    ("entities: {key-1: {name: 7}}\n", "entities.key-1.name", "must be a string, got a number"),
    (f"entities: {{key-1: {{name: {'n' * 257}}}}}\n", "entities.key-1.name", "must be at most 256 characters"),
    ("entities: {key-1: {metadata: {tier: 1}}}\n", "entities.key-1.metadata.tier", "must be a string, got a number"),
    ("entities: {key-1: {metadata: [tier]}}\n", "entities.key-1.metadata", "must be a mapping, got a list"),
    ("entities: {key-1: {metadata: {" + ", ".join(f"k{i}: v" for i in range(51)) + "}}}\n", "entities.key-1.metadata",
     "has too many properties"),
    ("entities: {key-1: 5}\n", "entities.key-1", "must be a mapping, got a number"),
    ("entities: {a: {parent: b}, b: {parent: c}, c: {parent: a}}\n", "entities.a.parent", "parents form a cycle: a -> b -> c -> a"),
    # The quota model's keys: disabled flags and schedules.
    ("entities: {key-1: {disabled: 'yes'}}\n", "entities.key-1.disabled", "must be true or false, got a string"),
    ("resources: {gpt-4: {disabled: 1}}\n", "resources.gpt-4.disabled", "must be true or false, got a number"),
    ("entities: {key-1: {limits: {_default_: {disabled: true}}}}\n", "entities.key-1.limits._default_.disabled",
     "_default_'s flag is the whole entity's: use `disabled` on entities.key-1"),
    ("resources: {gpt-4: {}}\n", "resources.gpt-4", "the long form needs `limits: TEXT` or `disabled: true|false`"),
    ('system: {limits: "rpm=1/s", disabled: true}\n', "system.disabled", "unknown key; expected one of: limits, schedule"),
    ('resources: {gpt-4: {disabled: true, schedule: [{cron: "0 9 * * *", limits: "rpm=2/s"}]}}\n', "resources.gpt-4.schedule",
     "a schedule needs `limits: TEXT` next to it"),
    ('system: {limits: "rpm=1/s", schedule: "0 9 * * *"}\n', "system.schedule", "must be a list, got a string"),
    ('system: {limits: "rpm=1/s", schedule: [{limits: "rpm=2/s"}]}\n', "system.schedule[0]",
     "a schedule entry needs `cron: EXPRESSION` and `limits: TEXT`"),
    ('system: {limits: "rpm=1/s", schedule: [{cron: "0 9 * * *", limits: "rpm=2/s", tz: CET}]}\n', "system.schedule[0].tz",
     "unknown key; expected one of: cron, limits"),
    ('resources: {gpt-4: {limits: "rpm=1/s", schedule: [{cron: "0 9 * *", limits: "rpm=2/s"}]}}\n', "resources.gpt-4.schedule[0]",
     "'0 9 * *' is not a cron expression of five fields"),
    ('resources: {gpt-4: {limits: "rpm=1/s", schedule: [{cron: "0 25 * * *", limits: "rpm=2/s"}]}}\n',
     "resources.gpt-4.schedule[0]", "is not a cron expression"),
    ('entities: {k: {limits: {gpt-4: {limits: "rpm=1/s", schedule: [{cron: "0 9 * * *", limits: "rpm=2/fortnight"}]}}}}\n',
     "entities.k.limits.gpt-4.schedule[0].limits", "unknown period 'fortnight'"),
    # Every weekday at 9 and every day at 9 fire together on weekdays: which limits apply would be undefined.
    ('system:\n  limits: "rpm=1/s"\n  schedule:\n    - {cron: "0 9 * * *", limits: "rpm=2/s"}\n'
     '    - {cron: "0 18 * * *", limits: "rpm=3/s"}\n    - {cron: "0 9 * * MON-FRI", limits: "rpm=4/s"}\n',
     "system.schedule[2]", "fires at the same instant as entry 0 ('0 9 * * *')"),
]


@pytest.mark.parametrize("text,path,message", BAD, ids=[f"{i}:{case[1][:40]}" for i, case in enumerate(BAD)])
def test_a_bad_key_is_refused_with_its_path(text, path, message):
    with pytest.raises(SpecError) as refused:
        load_text(text, "limits.yaml")
    problems = dict(refused.value.problems)
    assert path in problems, refused.value.problems
    assert message in problems[path]
    assert f"{path}: " in str(refused.value) and str(refused.value).startswith("limits.yaml: ")
    assert refused.value.field == refused.value.problems[0][0]  # a ValidationError naming the (first) bad key


def test_every_problem_of_a_file_is_reported_at_once():
    text = 'system: "rpm=1/x"\nresources: {gpt-4: 5}\nentities: {key-1: {cascade: true}}\n'
    with pytest.raises(SpecError) as refused:
        load_text(text, "limits.yaml")
    # The schema's problems come first; rules the schema cannot say are checked once it passes.
    assert [path for path, _ in refused.value.problems] == ["resources.gpt-4"]
    with pytest.raises(SpecError) as refused:
        load_text(text.replace("gpt-4: 5", 'gpt-4: "tpm=1/d:0"'), "limits.yaml")
    assert [path for path, _ in refused.value.problems] == ["entities.key-1.cascade", "resources.gpt-4", "system"]
    assert str(refused.value).startswith("limits.yaml: 3 problems\n  entities.key-1.cascade: ")


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "the file is empty"),
        ("- a\n", "must be a mapping, got a list"),
        ("system: [\n", "not valid YAML: line 2, column 1"),
        ("entities:\n  org-1: {}\n  org-1: {}\n", "not valid YAML: line 3, column 3: key 'org-1' appears twice"),
        ("entities: {? [a]: {}}\n", "a key must be a scalar"),
    ],
)
def test_a_file_that_is_not_a_limits_document(text, message):
    with pytest.raises(SpecError) as refused:
        load_text(text, "limits.yaml")
    assert message in str(refused.value)


def test_without_the_limits_extra_the_message_names_it(tmp_path):
    path = tmp_path / "limits.yaml"
    path.write_text(SMALLEST)
    probe = (
        "import sys; sys.modules['yaml'] = None; sys.modules['jsonschema'] = None\n"
        "from click.testing import CliRunner\nfrom zae_limiter.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['limits', 'plan', {str(path)!r}, '--table-name', 'tbl', '--region', 'us-east-1',"
        " '--endpoint-url', 'http://127.0.0.1:9'])\n"
        "print(r.exit_code); print(r.output)\n"
    )
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    code, _, output = ran.stdout.partition("\n")
    assert code == "1", ran.stdout + ran.stderr
    assert output.strip() == "Error: limits files need the limits extra: pip install 'zae-limiter[limits]'"
    assert "Traceback" not in ran.stdout + ran.stderr


# The quota model's keys: schedules, calendar quotas and soft limits, disabled flags at every level.
QUOTA_FILE = """\
system:
  limits: "rpm=1000/min"
  schedule:
    - {cron: "0 18 * * MON-FRI", limits: "rpm=1000/min"}
    - {cron: "0 9 * * MON-FRI", limits: "rpm=2000/min"}
resources:
  gpt-4: {limits: "rpm=100/min,tpm=10000/min:50000", schedule: [{cron: "0 0 1 * *", limits: "rpm=50/min"}]}
  legacy: {disabled: true}
entities:
  org-1:
    limits: {gpt-4: "rpm=500/min, soft budget=50000000 per month"}
  key-1:
    parent: org-1
    cascade: true
    limits:
      _default_: "rpm=50/min"
      gpt-4: {limits: "rpm=20/min", disabled: true}
      embeddings: {disabled: false}
  key-2:
    parent: org-1
    disabled: true
"""


def test_the_quota_models_keys_read_as_written():
    spec = load_text(QUOTA_FILE)
    rpm = Limit.per_minute
    # Entries sorted by cron text: their order means nothing (no two fire at once).
    assert spec.system == stored([rpm("rpm", 1000)], [("0 9 * * MON-FRI", [rpm("rpm", 2000)]), ("0 18 * * MON-FRI", [rpm("rpm", 1000)])])
    assert spec.system.schedule[0][0] == "0 18 * * MON-FRI"  # sorted as text
    assert spec.resources == {"gpt-4": stored([rpm("rpm", 100), rpm("tpm", 10_000, burst=50_000)], [("0 0 1 * *", [rpm("rpm", 50)])])}
    assert spec.disabled_resources == {"legacy": True}
    assert spec.entities["org-1"].limits["gpt-4"] == stored([rpm("rpm", 500), Limit.quota("budget", 50_000_000, every="month", soft=True)])
    key_1 = spec.entities["key-1"]
    assert (key_1.disabled, dict(key_1.disabled_for), set(key_1.limits)) == (None, {"gpt-4": True, "embeddings": False}, {"_default_", "gpt-4"})
    assert spec.entities["key-2"] == EntitySpec("key-2", parent_id="org-1", disabled=True)
    assert spec.flags() == {(None, "legacy"): True, ("key-1", "gpt-4"): True, ("key-1", "embeddings"): False, ("key-2", None): True}


def test_the_quota_models_keys_read_back_from_their_document_unchanged():
    spec = load_text(QUOTA_FILE)
    document = to_document(spec)
    assert from_document(document) == spec
    assert document["resources"]["legacy"] == {"disabled": True}
    assert document["entities"]["key-1"]["limits"] == {
        "_default_": "rpm=50/min", "embeddings": {"disabled": False}, "gpt-4": {"limits": "rpm=20/min", "disabled": True},
    }
    assert document["entities"]["key-2"] == {"parent": "org-1", "disabled": True}
    assert document["system"]["schedule"] == [
        {"cron": "0 18 * * MON-FRI", "limits": "rpm=1000/min"}, {"cron": "0 9 * * MON-FRI", "limits": "rpm=2000/min"},
    ]
    assert json.loads(json.dumps(document)) == document
    jsonschema.validate(document, json_schema(), cls=jsonschema.Draft202012Validator)


def readme_limits_files() -> list[str]:
    """Every YAML block of the README's section "Limits as code"."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Limits as code\n", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0] for block in section.split("```yaml\n")[1:]]


def test_the_readmes_limits_files_read_as_written():
    files = readme_limits_files()
    assert len(files) >= 2
    for text in files:
        load_text(text, "README.md")  # raises SpecError naming the bad key
    quota = load_text(files[1])
    assert quota.flags() and quota.system is not None and quota.system.schedule
