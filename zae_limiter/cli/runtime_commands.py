"""Runtime commands over the table: entities, stored limits, availability."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ..core.limits import Limit, format_limits
from ..core.models import Entity
from ..core.schema import DEFAULT_RESOURCE
from ..sync_limiter import SyncRateLimiter
from .group import cli
from .options import endpoint_option, limits_argument, region_option, table_option

ENDPOINT_HELP = "DynamoDB endpoint (an emulator such as `zae-limiter local`)."


def connection(f: Any) -> Any:
    for decorator in reversed([table_option(), region_option(), endpoint_option(ENDPOINT_HELP)]):
        f = decorator(f)
    return f


def open_limiter(table_name: str, region: str | None, endpoint_url: str | None) -> SyncRateLimiter:
    # A CLI run is one short session: stored limits must be read fresh, not from a cache.
    return SyncRateLimiter(table_name=table_name, region=region, endpoint_url=endpoint_url, config_cache_seconds=0)


def entity_table(entities: list[Entity], title: str) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    for column in ("entity", "name", "parent", "cascade", "metadata", "created"):
        table.add_column(column)
    for e in entities:
        table.add_row(
            e.entity_id,
            e.name or "",
            e.parent_id or "",
            "yes" if e.cascade else "no",
            ", ".join(f"{k}={v}" for k, v in sorted(e.metadata.items())),
            e.created_at.strftime("%Y-%m-%d %H:%M:%S") if e.created_at else "",
        )
    return table


def limits_table(limits: list[Limit], title: str) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    for column in ("limit", "kind", "capacity", "refill", "as text"):
        table.add_column(column)
    for limit in limits:
        kind = f"quota per {limit.every} ({limit.tz})" if limit.every else "rate"
        refill = "at each boundary" if limit.every else f"{limit.refill_amount:g} per {limit.refill_period_seconds:g} s"
        table.add_row(limit.name, kind + (", soft" if limit.soft else ""), f"{limit.capacity:g}", refill, limit.to_text())
    return table


# -- entity ---------------------------------------------------------------------------------------
@cli.group()
def entity() -> None:
    """Create, show, list, move, disable and delete entities; fill or top up their buckets."""


@entity.command("create")
@click.argument("entity_id")
@click.option("--name", help="Display name.")
@click.option("--parent", "parent_id", help="Parent entity id (for example the project of an API key).")
@click.option("--cascade", is_flag=True, help="Also take this entity's consumption from its parent.")
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Metadata entry (repeatable).")
@connection
def entity_create(entity_id: str, name: str | None, parent_id: str | None, cascade: bool, meta: tuple[str, ...],
                  table_name: str, region: str | None, endpoint_url: str | None) -> None:
    """Create ENTITY_ID."""
    metadata = {}
    for text in meta:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {text!r}", param_hint="--meta")
        metadata[key] = value
    with open_limiter(table_name, region, endpoint_url) as limiter:
        created = limiter.create_entity(entity_id, name=name, parent_id=parent_id, cascade=cascade, metadata=metadata)
    Console().print(entity_table([created], "Created"))


@entity.command("show")
@click.argument("entity_id")
@connection
def entity_show(entity_id: str, table_name: str, region: str | None, endpoint_url: str | None) -> None:
    """Show ENTITY_ID and its stored default limits."""
    with open_limiter(table_name, region, endpoint_url) as limiter:
        found = limiter.get_entity(entity_id)
        limits = limiter.get_limits(entity_id)
    console = Console()
    console.print(entity_table([found], f"Entity {entity_id}"))
    if limits:
        console.print(limits_table(limits, "Stored limits (_default_)"))


@entity.command("children")
@click.argument("parent_id")
@connection
def entity_children(parent_id: str, table_name: str, region: str | None, endpoint_url: str | None) -> None:
    """List the entities whose parent is PARENT_ID."""
    with open_limiter(table_name, region, endpoint_url) as limiter:
        children = limiter.get_children(parent_id)
    Console().print(entity_table(children, f"Children of {parent_id}"))


@entity.command("delete")
@click.argument("entity_id")
@click.option("--yes", is_flag=True, help="Delete without asking for confirmation.")
@connection
def entity_delete(entity_id: str, yes: bool, table_name: str, region: str | None, endpoint_url: str | None) -> None:
    """Delete ENTITY_ID with its stored limits and buckets (its usage history stays)."""
    if not yes:
        click.confirm(f"Delete entity {entity_id}, its stored limits and its buckets?", abort=True, err=True)
    with open_limiter(table_name, region, endpoint_url) as limiter:
        limiter.delete_entity(entity_id)
    click.echo(f"deleted {entity_id}")


# -- limits ---------------------------------------------------------------------------------------
SPEC_HELP = (
    "Limits, comma-separated: name=rate/period[:burst] (rpm=100/min,tpm=10000/min:50000), a calendar quota "
    "name=amount per day|week|month [in TZ] (budget=1000000 per month in Europe/Paris), either after 'soft ' "
    "to meter without refusing"
)


def _scope(entity_id: str | None, resource: str | None, system: bool) -> tuple[str, str | None]:
    # `is not None`, not truthiness: `--entity ""` is a bad id to refuse, not a request for the resource
    # defaults (a far wider scope than asked for).
    if system and (entity_id is not None or resource is not None):
        raise click.UsageError("--system stands alone: system defaults apply to every entity and resource")
    if entity_id is not None:
        return "entity", resource
    if system:
        return "system", None
    if resource is not None:
        return "resource", resource
    raise click.UsageError("say whose limits: --entity ID [--resource R], --resource R (resource defaults), or --system")


def scope_options(f: Any) -> Any:
    f = click.option("--system", is_flag=True, help="System-wide defaults.")(f)
    f = click.option("--resource", help="Resource (with --entity: that entity's limits for it; alone: resource defaults).")(f)
    f = click.option("--entity", "entity_id", help="Entity id.")(f)
    return f


@cli.group()
def limits() -> None:
    """Set, show and delete stored limits (entity, resource defaults, system defaults), and plan or apply a
    limits file."""


def schedule_option(values: tuple[str, ...]) -> list[tuple[str, list[Limit]]] | None:
    """`--schedule "CRON=LIMITS"` entries (the cron expression's five fields, `=`, then limits)."""
    entries = []
    for value in values:
        cron, sep, spec = value.partition("=")
        if not sep or len(cron.split()) != 5:
            raise click.BadParameter(f"expected 'CRON=LIMITS', e.g. '0 9 * * MON-FRI=rpm=500/min', got {value!r}",
                                     param_hint="--schedule")
        entries.append((cron.strip(), limits_argument(spec, "--schedule") or []))
    return entries or None


@limits.command("set")
@click.argument("spec", metavar="LIMITS")
@scope_options
@click.option("--schedule", "schedule", multiple=True, metavar="'CRON=LIMITS'",
              help="From each time CRON fires (UTC), LIMITS apply instead; the latest past entry wins. Repeat "
              "for each entry, e.g. --schedule '0 9 * * MON-FRI=rpm=500/min' --schedule '0 18 * * MON-FRI=rpm=50/min'.")
@connection
def limits_set(spec: str, entity_id: str | None, resource: str | None, system: bool, schedule: tuple[str, ...],
               table_name: str, region: str | None, endpoint_url: str | None) -> None:
    """Store LIMITS (for example rpm=100/min,tpm=10000/min:50000 or 'budget=1000000 per month')."""
    parsed = limits_argument(spec)
    assert parsed is not None
    entries = schedule_option(schedule)
    scope, res = _scope(entity_id, resource, system)
    with open_limiter(table_name, region, endpoint_url) as limiter:
        if scope == "entity":
            limiter.set_limits(entity_id, parsed, resource=DEFAULT_RESOURCE if res is None else res,  # type: ignore[arg-type]
                               schedule=entries)
        elif scope == "resource":
            limiter.set_resource_defaults(res, parsed, schedule=entries)  # type: ignore[arg-type]
        else:
            limiter.set_system_defaults(parsed, schedule=entries)
    click.echo(f"stored {format_limits(parsed)}" + "".join(f"\n  from {cron}: {format_limits(l)}" for cron, l in entries or []))


@limits.command("get")
@scope_options
@connection
def limits_get(entity_id: str | None, resource: str | None, system: bool, table_name: str, region: str | None,
               endpoint_url: str | None) -> None:
    """Show stored limits."""
    scope, res = _scope(entity_id, resource, system)
    with open_limiter(table_name, region, endpoint_url) as limiter:
        if scope == "entity":
            found = limiter.get_limits(entity_id, resource=DEFAULT_RESOURCE if res is None else res)  # type: ignore[arg-type]
            entries = limiter.get_schedule(entity_id, DEFAULT_RESOURCE if res is None else res)
        elif scope == "resource":
            found = limiter.get_resource_defaults(res)  # type: ignore[arg-type]
            entries = limiter.get_schedule(resource=res)
        else:
            found = limiter.get_system_defaults()
            entries = limiter.get_schedule()
    if not found:
        click.echo("no limits stored here", err=True)
        return
    console = Console()
    console.print(limits_table(found, f"Limits ({scope}{' ' + res if res else ''})"))
    if entries:
        table = Table(title="Schedule (UTC): from each time the cron fires, these limits apply; the latest wins",
                      show_header=True, header_style="bold")
        table.add_column("cron")
        table.add_column("limits")
        for cron, scheduled in entries:
            table.add_row(cron, format_limits(scheduled))
        console.print(table)


@limits.command("delete")
@scope_options
@connection
def limits_delete(entity_id: str | None, resource: str | None, system: bool, table_name: str, region: str | None,
                  endpoint_url: str | None) -> None:
    """Delete stored limits."""
    scope, res = _scope(entity_id, resource, system)
    with open_limiter(table_name, region, endpoint_url) as limiter:
        if scope == "entity":
            limiter.delete_limits(entity_id, resource=DEFAULT_RESOURCE if res is None else res)  # type: ignore[arg-type]
        elif scope == "resource":
            limiter.delete_resource_defaults(res)  # type: ignore[arg-type]
        else:
            limiter.delete_system_defaults()
    click.echo("deleted")


# -- availability ---------------------------------------------------------------------------------
@cli.command()
@click.argument("entity_id")
@click.argument("resource")
@click.option("--limits", "spec", help="Limits to use when none are stored. " + SPEC_HELP)
@connection
def available(entity_id: str, resource: str, spec: str | None, table_name: str, region: str | None,
              endpoint_url: str | None) -> None:
    """Show the tokens ENTITY_ID can take from RESOURCE now, per limit."""
    fallback = limits_argument(spec)
    with open_limiter(table_name, region, endpoint_url) as limiter:
        tokens = limiter.available(entity_id, resource, fallback)
    table = Table(title=f"Available to {entity_id} on {resource}", show_header=True, header_style="bold")
    table.add_column("limit")
    table.add_column("tokens", justify="right")
    for name in sorted(tokens):
        table.add_row(name, f"{tokens[name]:,.3f}")
    Console().print(table)
