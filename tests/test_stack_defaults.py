"""One list of stack defaults (zae_limiter/stack_defaults.py): every reader takes its defaults from it, none
spells one of its own (checked on their sources), and what each reader offers a user, and what the
documentation says, is that list."""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

import click
import pytest

from component_mocks import deploy
from pulumi_component.args import ZaeLimiterArgs
from pulumi_component.cloudformation import template
from pulumi_component.program import DEFAULT_NAME, program_from_config
from zae_limiter import StackOptions
from zae_limiter.cli import cli
from zae_limiter.cli.options import stack_options_from
from zae_limiter.stack import DEFAULT_BACKEND_DIR, StackManager
from zae_limiter.stack_defaults import (
    CODE_ARCHIVE,
    COMPONENT_NAME,
    OPTION_DEFAULTS,
    PITR_DAYS_WHEN_ENABLED,
    PROJECT,
    REGION,
    STACK_NAME_PREFIX,
    TABLE_NAME,
)

ROOT = Path(__file__).resolve().parent.parent
# Every module that reads a stack default.
READERS = [
    "zae_limiter/stack_options.py", "zae_limiter/stack.py", "zae_limiter/cli/options.py",
    "zae_limiter/cli/export_commands.py", "zae_limiter/cli/stack_commands.py", "zae_limiter/cli/local_command.py",
    "zae_limiter/local_stream.py", "pulumi_component/args.py", "pulumi_component/cloudformation.py",
    "pulumi_component/program.py", "pulumi_component/stack_description.py", "pulumi_component/component.py",
    "pulumi_component/aggregator.py",
]
# The defaults' values that a reader could spell instead of reading them (None, booleans, 0 and "" are
# everywhere; the behaviour tests below cover those).
SPELLABLE = {
    value for value in [*OPTION_DEFAULTS.values(), CODE_ARCHIVE, COMPONENT_NAME, PITR_DAYS_WHEN_ENABLED, PROJECT,
                        REGION, STACK_NAME_PREFIX, TABLE_NAME]
    if isinstance(value, (int, str)) and not isinstance(value, bool) and value not in (0, "")
}


def spelled_defaults(source: str) -> list[tuple[int, object]]:
    """(line, value) of each literal stack default in a default's place: a `default=` argument, a
    template parameter's "Default", a parameter's default, a dataclass field's default, or a module-level
    name with DEFAULT in it."""
    tree = ast.parse(source)
    places: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "default":
            places.append(node.value)
        elif isinstance(node, ast.Dict):
            places += [v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant) and k.value == "Default"]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            places += [d for d in node.args.defaults + node.args.kw_defaults if d is not None]
        elif isinstance(node, ast.ClassDef):
            places += [s.value for s in node.body if isinstance(s, ast.AnnAssign) and s.value is not None]
    for node in tree.body:
        if isinstance(node, ast.Assign) and any("DEFAULT" in getattr(t, "id", "") for t in node.targets):
            places.append(node.value)
    return [
        (place.lineno, place.value) for place in places
        if isinstance(place, ast.Constant) and not isinstance(place.value, bool) and place.value in SPELLABLE
    ]


@pytest.mark.parametrize("module", READERS)
def test_no_reader_spells_a_default_of_its_own(module):
    assert spelled_defaults((ROOT / module).read_text()) == [], f"{module} spells defaults of stack_defaults.py"


def test_the_check_finds_a_spelled_default():
    source = '''
import click
from dataclasses import dataclass
DEFAULT_NAME = "zae-limiter"
@dataclass
class Options:
    lambda_memory_mb: int = 256
def f(windows="hourly,daily"):
    return {"Default": "90"} | {"Default": 90}
opt = click.option("--log-retention-days", default=14)
'''
    found = [value for _, value in spelled_defaults(source)]
    assert sorted(found, key=repr) == sorted(["zae-limiter", 256, "hourly,daily", 90, 14], key=repr)


def test_stack_options_and_the_components_arguments_default_to_the_list():
    assert [f.name for f in fields(StackOptions)] == list(OPTION_DEFAULTS)
    options, args = StackOptions(), ZaeLimiterArgs(TABLE_NAME)
    for name, default in OPTION_DEFAULTS.items():
        assert getattr(options, name) == getattr(args, name) == default, name


def _parsed(command: str, *argv: str) -> dict:
    """The parameters click gives the command when only `argv` is typed."""
    context = cli.commands[command].make_context(command, list(argv))
    return dict(context.params)


@pytest.mark.parametrize("command, argv", [
    ("deploy", ["--table-name", "t_1", "--region", "eu-west-1"]),
    ("preview", ["--table-name", "t_1", "--region", "eu-west-1"]),
    ("cfn-template", []),
    ("program", ["somewhere"]),
])
def test_the_cli_options_default_to_the_list(command, argv):
    params = _parsed(command, *argv)
    assert stack_options_from(params) == StackOptions()
    if command in ("cfn-template", "program"):
        assert params["table_name"] == TABLE_NAME
    if command == "program":
        assert params["project_name"] == PROJECT


@pytest.mark.parametrize("flag, field", [
    ("--no-aggregator", "enable_aggregator"), ("--enable-alarms", "enable_alarms"),
    ("--deletion-protection", "deletion_protection"),
])
def test_each_flag_turns_its_default_around(flag, field):
    """A flag has no value to read from the list: it is right as long as giving it changes the default."""
    options = stack_options_from(_parsed("cfn-template", flag))
    assert getattr(options, field) is (not OPTION_DEFAULTS[field])


def test_the_other_commands_defaults():
    assert _parsed("lambda-export")["output"] == CODE_ARCHIVE
    local = _parsed("local")
    assert (local["table_name"], local["region"], local["snapshot_windows"]) == (
        TABLE_NAME, REGION, OPTION_DEFAULTS["snapshot_windows"])
    assert StackManager(table_name="t_1", pulumi_command=object()).stack_name == f"{STACK_NAME_PREFIX}t_1"
    assert DEFAULT_NAME == COMPONENT_NAME


def test_the_templates_parameters_default_to_the_list():
    parameters = template()["Parameters"]
    assert {name: p["Default"] for name, p in parameters.items()} == {
        "TableName": TABLE_NAME,
        "SnapshotWindows": OPTION_DEFAULTS["snapshot_windows"],
        "SnapshotRetentionDays": str(OPTION_DEFAULTS["snapshot_retention_days"]),
        "EnablePITR": "false" if OPTION_DEFAULTS["pitr_recovery_days"] == 0 else "true",
        "PITRRecoveryDays": str(OPTION_DEFAULTS["pitr_recovery_days"] or PITR_DAYS_WHEN_ENABLED),
        "LogRetentionDays": str(OPTION_DEFAULTS["log_retention_days"]),
        "CodeS3Bucket": "",
        "CodeS3Key": CODE_ARCHIVE,
    }


def test_the_standalone_program_defaults_to_the_list():
    deployment = deploy(program_from_config, config={"tableName": "t_1"})
    args = deployment.result.args
    assert deployment.result._name == COMPONENT_NAME
    for name, default in OPTION_DEFAULTS.items():
        assert getattr(args, name) == default, name


def test_the_aggregators_own_fallbacks_are_the_lists():
    """The Lambda's package carries only the core, so the aggregator spells the defaults it falls back on
    when its environment lacks them; they must be the list's."""
    from aggregator.snapshots import DEFAULT_RETENTION_DAYS, DEFAULT_WINDOWS, Settings

    assert DEFAULT_WINDOWS == OPTION_DEFAULTS["snapshot_windows"]
    assert DEFAULT_RETENTION_DAYS == OPTION_DEFAULTS["snapshot_retention_days"]
    assert Settings.from_env({}) == Settings.parse(OPTION_DEFAULTS["snapshot_windows"], OPTION_DEFAULTS["snapshot_retention_days"])


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "none" if value is None else str(value)


def test_the_schemas_descriptions_state_the_lists_defaults():
    """The docstrings of ZaeLimiterArgs are the schema other languages read (they must be literals there)."""
    tree = ast.parse((ROOT / "pulumi_component" / "args.py").read_text())
    (args,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ZaeLimiterArgs"]
    stated = {}
    for field_node, doc in zip(args.body, args.body[1:]):
        if isinstance(field_node, ast.AnnAssign) and isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant):
            found = re.search(r"default ([\w,]+)\)", doc.value.value)
            if found:
                stated[field_node.target.id] = found[1]
    assert len(stated) >= 8, stated
    for name, text in stated.items():
        assert text == _text(OPTION_DEFAULTS[name]), name


def _table_rows(text: str, header: str) -> list[list[str]]:
    lines = text[text.index(header):].splitlines()
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _plain(cell: str) -> str:
    return re.sub(r"\s*\(.*\)$", "", cell).replace("`", "").strip()


def test_the_guides_tables_state_the_lists_defaults():
    docs = (ROOT / "docs" / "infrastructure.md").read_text()
    rows = _table_rows(docs, "| Argument | Config key | Default | Meaning |")
    stated = {_plain(row[0]): _plain(row[2]) for row in rows if _plain(row[0]) in OPTION_DEFAULTS}
    assert set(stated) == set(OPTION_DEFAULTS)
    for name, text in stated.items():
        expected = "{}" if name == "tags" else _text(OPTION_DEFAULTS[name])
        assert text == expected, name

    readme = (ROOT / "README.md").read_text()
    default_of = {param.opts[0]: param.default for param in cli.commands["deploy"].params}
    default_of["--stack-name"] = f"{STACK_NAME_PREFIX}{{table}}"  # computed from the table, so in the help
    default_of["--backend-url"] = f"file://{DEFAULT_BACKEND_DIR}"  # or PULUMI_BACKEND_URL, so in the help
    checked = 0
    for row in _table_rows(readme, "| `deploy` / `preview` option | default | meaning |"):
        options = [o.split(" ")[0] for o in _plain(row[0]).split(", ")]
        values = _plain(row[1]).split(", ")
        if len(options) != len(values) or values[0] in ("off", "none", "required"):
            continue  # flags, options without a default, and those the environment gives
        for option, value in zip(options, values):
            assert value == str(default_of[option]), option
            checked += 1
    assert checked >= 7
    parameters = {name: p["Default"] for name, p in template()["Parameters"].items()}
    for row in _table_rows(readme, "| parameter | default | meaning |"):
        for name, value in zip(_plain(row[0]).split(", "), _plain(row[1]).split(", ")):
            assert ("" if value == "empty" else value) == parameters[name], name


def test_every_stack_default_is_offered_somewhere():
    """The deploy options cover every StackOptions field (tags through --tag)."""
    params = _parsed("deploy", "--table-name", "t_1", "--region", "eu-west-1")
    assert isinstance(stack_options_from(params), StackOptions)
    names = {p.name for p in cli.commands["deploy"].params if isinstance(p, click.Option)}
    assert {"no_aggregator", "log_retention_days", "pitr_recovery_days", "snapshot_windows", "snapshot_retention_days",
            "lambda_memory", "lambda_timeout", "enable_alarms", "alarm_sns_topic", "permission_boundary",
            "role_name_prefix", "deletion_protection", "tags"} <= names
