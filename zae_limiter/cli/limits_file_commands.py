"""`limits plan FILE` and `limits apply FILE`: stored limits as code (zae_limiter.limits_spec)."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ..limits_spec import Change, LimitsSpec, Plan, SpecError, load_file
from ..limits_spec.model import CHANGE, CREATE, DELETE, describe
from .runtime_commands import connection, limits, open_limiter

FILE_TYPE = click.Path(exists=True, dir_okay=False, readable=True)
PRUNE_HELP = ("Also delete what the file does not name: entities (children first), their stored limits, resource "
              "and system defaults, and lift the disabled flags it does not name. Reads the whole table (a Scan).")
_ACTIONS = {CREATE: ("+ create", "green"), CHANGE: ("~ change", "yellow"), DELETE: ("- delete", "red")}
_DONE = {CREATE: "created", CHANGE: "changed", DELETE: "deleted"}


def _load(path: str) -> LimitsSpec:
    try:
        return load_file(path)
    except SpecError as error:
        raise click.BadParameter(str(error), param_hint="FILE") from error


def plan_table(planned: Plan, title: str) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    for column in ("action", "what", "target", "before", "after"):
        table.add_column(column, overflow="fold")  # never cut a limit text short: the plan is reviewed
    for change in planned.changes:
        label, colour = _ACTIONS[change.action]
        after = describe(change.after) or change.note
        table.add_row(f"[{colour}]{label}[/{colour}]", change.kind, change.target, describe(change.before), after)
    return table


def _plan(limiter: Any, spec: LimitsSpec, prune: bool) -> Plan:
    from ..limits_spec import plan_against

    try:
        return plan_against(limiter, spec, prune)
    except SpecError as error:  # the file names a parent that exists nowhere, or a cycle through the table
        raise click.BadParameter(str(error), param_hint="FILE") from error


def _show(planned: Plan, path: str) -> None:
    if planned.empty:
        click.echo(f"No changes: the table already holds what {path} declares.")
        return
    Console().print(plan_table(planned, f"Plan for {path}"))
    click.echo(f"Plan: {planned.summary()}.")


@limits.command("plan")
@click.argument("file", type=FILE_TYPE)
@click.option("--prune", is_flag=True, help=PRUNE_HELP)
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when there is nothing to do, 2 when there are changes, 1 on any error (a bad file too).")
@connection
def limits_plan(file: str, prune: bool, detailed_exitcode: bool, table_name: str, region: str | None,
                endpoint_url: str | None) -> None:
    """Show what `limits apply FILE` would create, change and delete. Writes nothing.

    FILE is YAML: system defaults, resource defaults and entities with their stored limits (see the
    README, "Limits as code"). Exit 0 (also with changes, unless --detailed-exitcode); a bad file
    exits 2, naming the path of each bad key.
    """
    try:
        spec = _load(file)
        with open_limiter(table_name, region, endpoint_url) as limiter:
            planned = _plan(limiter, spec, prune)
    except click.BadParameter as error:
        if not detailed_exitcode:
            raise
        click.echo(f"Error: {error.format_message()}", err=True)
        raise SystemExit(1) from error
    _show(planned, file)
    if detailed_exitcode and not planned.empty:
        raise SystemExit(2)


@limits.command("apply")
@click.argument("file", type=FILE_TYPE)
@click.option("--prune", is_flag=True, help=PRUNE_HELP)
@click.option("--yes", is_flag=True, help="Delete without asking for confirmation.")
@connection
def limits_apply(file: str, prune: bool, yes: bool, table_name: str, region: str | None, endpoint_url: str | None) -> None:
    """Make the table hold what FILE declares: parents before children, deletes (with --prune) last and
    children first. Asks before deleting unless --yes. Running it again changes nothing.

    A bad file is refused whole (exit 2) before anything is written. If a write fails, the apply stops,
    says what was applied and what was not, and exits 1.
    """
    from ..limits_spec import ApplyFailed, apply_plan

    spec = _load(file)
    with open_limiter(table_name, region, endpoint_url) as limiter:
        planned = _plan(limiter, spec, prune)
        _show(planned, file)
        if planned.empty:
            return
        deletes = planned.deletes
        if deletes and not yes:
            click.confirm(f"Delete the {len(deletes)} item(s) marked '- delete' above?", abort=True, err=True)
        try:
            apply_plan(limiter, planned, on_applied=lambda change: click.echo(f"{_DONE[change.action]} {change.kind} {change.target}"))
        except ApplyFailed as failed:
            _report_failure(failed)
            raise SystemExit(1) from failed
    click.echo(f"Applied: {planned.count(CREATE)} created, {planned.count(CHANGE)} changed, {planned.count(DELETE)} deleted.")


def _report_failure(failed: Any) -> None:
    click.echo(f"Error: {failed.failed} failed: {failed.cause}", err=True)
    click.echo("It may or may not have been applied; run `zae-limiter limits plan` again to see.", err=True)
    _list("Applied", failed.applied)
    _list("Not applied", failed.pending)


def _list(title: str, changes: "tuple[Change, ...]") -> None:
    click.echo(f"{title} ({len(changes)}):", err=True)
    for change in changes:
        click.echo(f"  {change}", err=True)

