"""Fuzzing the CLI's runtime commands with arbitrary ids, limit specs and metadata: each run exits 0 (it
worked, and the table holds exactly that) or 2 (bad usage, with a message), never 1 and never a traceback.
In process, against the embedded server."""

from __future__ import annotations

import uuid

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from test_fuzz_limits import SPECS
from zae_limiter import SyncRateLimiter, ValidationError
from zae_limiter.cli import cli
from zae_limiter.core.limits import parse_limits
from zae_limiter.local import ensure_table
from zae_limiter.core.validation import check_id

pytestmark = pytest.mark.server

IDS = st.one_of(
    st.from_regex(r"[a-z][a-z0-9._:-]{0,12}", fullmatch=True),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=12),
    st.sampled_from(["a#b", "", "x" * 300, "-h", "--table-name", "k\n", "k\x00"]),
)
META = st.lists(st.one_of(st.from_regex(r"[a-z]{1,5}=[a-z0-9 ]{0,5}", fullmatch=True), st.text(max_size=8)), max_size=2)


@pytest.fixture(scope="module")
def setup(endpoint_url):
    table = f"cli_{uuid.uuid4().hex[:8]}"
    ensure_table(table, endpoint_url=endpoint_url, region="us-east-1")
    env = {"ZAE_LIMITER_ENDPOINT_URL": endpoint_url, "ZAE_LIMITER_TABLE": table, "AWS_DEFAULT_REGION": "us-east-1"}
    with SyncRateLimiter(table_name=table, region="us-east-1", endpoint_url=endpoint_url,
                         config_cache_seconds=0) as reader:
        yield env, reader


def run(env, *args):
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code in (0, 2), (args, result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert "Error" in result.output  # click's usage error, with the reason
    return result


def valid_id(value: str, positional: bool = True) -> bool:
    """Whether the CLI takes `value` as an id: a valid id, and, as a positional argument, not one that
    click reads as an option (an option's value may start with "-": `--entity -` is the id "-")."""
    try:
        check_id("entity_id", value)
    except ValidationError:
        return False
    return not (positional and value.startswith("-"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entity_id=IDS, spec=SPECS)
@example(entity_id="", spec="rpm=1/min")  # was taken for `--resource api` alone: resource defaults for all
@example(entity_id="-", spec="A=1/d")  # an option's value, so a valid id
def test_limits_set_stores_exactly_what_it_accepts(setup, entity_id, spec):
    env, reader = setup
    result = run(env, "limits", "set", spec, "--entity", entity_id, "--resource", "api")
    try:
        expected = parse_limits(spec)
    except ValidationError:
        expected = None
    if result.exit_code == 0:
        assert expected is not None and valid_id(entity_id, positional=False)
        assert reader.get_limits(entity_id, "api") == expected
    else:
        assert expected is None or not valid_id(entity_id, positional=False)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entity_id=IDS, meta=META, name=st.one_of(st.none(), st.text(max_size=6)))
def test_entity_create_is_created_or_refused(setup, entity_id, meta, name):
    env, reader = setup
    entity_id = entity_id and f"{entity_id}{uuid.uuid4().hex[:4]}"  # unique, unless empty
    args = ["entity", "create", entity_id, *(["--name", name] if name is not None else [])]
    for entry in meta:
        args += ["--meta", entry]
    result = run(env, *args)
    good_meta = all("=" in entry and entry.partition("=")[0] for entry in meta)
    if result.exit_code == 0:
        assert valid_id(entity_id) and good_meta
        created = reader.get_entity(entity_id)
        assert created.metadata == dict(entry.split("=", 1) for entry in meta)
    else:
        assert not (valid_id(entity_id) and good_meta) or name is not None
