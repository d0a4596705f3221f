"""deploy, preview, status, outputs, delete: the stack's lifecycle through the Automation API."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ..stack import StackManager
from ..stack_defaults import STACK_NAME_PREFIX
from .group import cli
from .options import (
    backend_option,
    deployment_options,
    endpoint_option,
    region_option,
    stack_name_option,
    stack_options_from,
    table_option,
)
from .progress import LiveProgress

ENDPOINT_HELP = "Point the AWS provider at an emulator (LocalStack, moto) for every service the stack uses."


def manager(ctx: click.Context, **kwargs: Any) -> StackManager:
    """The stack to work on, with the engine located first (a missing Pulumi CLI fails before any output).
    Tests hand a recording PulumiCommand through the context object."""
    stacks = StackManager(pulumi_command=(ctx.obj or {}).get("pulumi_command"), **kwargs)
    stacks.pulumi_command  # noqa: B018 - resolve now
    return stacks


def outputs_table(outputs: dict[str, Any], title: str = "Outputs") -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("output")
    table.add_column("value", overflow="fold")
    for key in sorted(outputs):
        value = outputs[key]
        table.add_row(key, "" if value is None else str(value))
    return table


def deployment_target(f: Any) -> Any:
    """The options naming what deploy and preview act on, and how to reach it."""
    for decorator in reversed([table_option(), region_option(required=True), stack_name_option,
                               endpoint_option(ENDPOINT_HELP), backend_option, deployment_options]):
        f = decorator(f)
    return f


def deployment_manager(ctx: click.Context, params: dict[str, Any]) -> StackManager:
    target = {key: params.pop(key) for key in ("table_name", "region", "stack_name", "endpoint_url", "backend_url")}
    return manager(ctx, options=stack_options_from(params), **target)


@cli.command()
@deployment_target
@click.pass_context
def deploy(ctx: click.Context, **params: Any) -> None:
    """Deploy the table, the aggregator and the policies as a Pulumi stack (create or update)."""
    stacks = deployment_manager(ctx, params)
    console = Console()
    console.print(f"Deploying stack [bold]{stacks.stack_name}[/] (table {stacks.table_name}, {stacks.region}) to {stacks.backend_url}")
    with LiveProgress(console) as progress:
        outputs = stacks.deploy(on_event=progress)
    console.print(outputs_table(outputs))


@cli.command()
@deployment_target
@click.pass_context
def preview(ctx: click.Context, **params: Any) -> None:
    """Show what deploy would change, without changing anything."""
    stacks = deployment_manager(ctx, params)
    summary = stacks.preview()
    table = Table(title=f"Preview of {stacks.stack_name}", show_header=True, header_style="bold")
    table.add_column("operation")
    table.add_column("resource")
    table.add_column("type", style="dim")
    for op, type_, name in summary.steps:
        if not type_.startswith(("pulumi:pulumi:Stack", "pulumi:providers:")):
            table.add_row(op, name, type_)
    console = Console()
    console.print(table)
    console.print("changes: " + (", ".join(f"{op} {n}" for op, n in sorted(summary.changes.items())) or "none"))


def _stack_target(table_name: str | None, stack_name: str | None) -> dict[str, Any]:
    if not stack_name and not table_name:
        raise click.UsageError(f"give --stack-name, or --table-name for the default stack name {STACK_NAME_PREFIX}{{table}}")
    return {"stack_name": stack_name, "table_name": table_name}


@cli.command()
@stack_name_option
@table_option(required=False)
@region_option()
@backend_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status(ctx: click.Context, stack_name: str | None, table_name: str | None, region: str | None,
           backend_url: str | None, as_json: bool) -> None:
    """Show a stack: last update, its result, resource count and outputs."""
    stacks = manager(ctx, region=region, backend_url=backend_url, **_stack_target(table_name, stack_name))
    state = stacks.status()
    if as_json:
        click.echo(json.dumps({
            "stack_name": state.stack_name,
            "backend_url": state.backend_url,
            "last_update": state.last_update.isoformat() if state.last_update else None,
            "last_result": state.last_result,
            "update_in_progress": state.update_in_progress,
            "resource_count": state.resource_count,
            "outputs": state.outputs,
        }, indent=2, default=str))
        return
    table = Table(title=f"Stack {state.stack_name}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("backend", state.backend_url)
    table.add_row("last update", state.last_update.strftime("%Y-%m-%d %H:%M:%S UTC") if state.last_update else "never")
    table.add_row("result", state.last_result or "-")
    table.add_row("in progress", "yes" if state.update_in_progress else "no")
    table.add_row("resources", str(state.resource_count if state.resource_count is not None else "-"))
    console = Console()
    console.print(table)
    console.print(outputs_table(state.outputs))


@cli.command()
@stack_name_option
@table_option(required=False)
@region_option()
@backend_option
@click.option("--json", "as_json", is_flag=True, help="Print the outputs as JSON.")
@click.pass_context
def outputs(ctx: click.Context, stack_name: str | None, table_name: str | None, region: str | None,
            backend_url: str | None, as_json: bool) -> None:
    """Print a stack's outputs (table and stream ARNs, function, policies)."""
    stacks = manager(ctx, region=region, backend_url=backend_url, **_stack_target(table_name, stack_name))
    values = stacks.outputs()
    if as_json:
        click.echo(json.dumps(values, indent=2, sort_keys=True))
    else:
        Console().print(outputs_table(values))


@cli.command()
@stack_name_option
@table_option(required=False)
@region_option()
@backend_option
@click.option("--yes", is_flag=True, help="Delete without asking for confirmation.")
@click.option("--keep-stack", is_flag=True, help="Destroy the resources but keep the (empty) stack in the backend.")
@click.pass_context
def delete(ctx: click.Context, stack_name: str | None, table_name: str | None, region: str | None,
           backend_url: str | None, yes: bool, keep_stack: bool) -> None:
    """Destroy a stack's resources, the table and its data included, then remove the stack."""
    stacks = manager(ctx, region=region, backend_url=backend_url, **_stack_target(table_name, stack_name))
    if not yes:
        click.confirm(
            f"Delete stack {stacks.stack_name} and every resource in it, including the DynamoDB table and its data?",
            abort=True,
            err=True,
        )
    console = Console()
    with LiveProgress(console) as progress:
        stacks.destroy(on_event=progress, remove=not keep_stack)
    console.print(f"Stack {stacks.stack_name} deleted" + (" (kept in the backend, empty)" if keep_stack else ""))
