"""Operator commands on entities and buckets: disable, enable, set-parent, reset, top-up."""

from __future__ import annotations

from decimal import Decimal

import click
from rich.console import Console

from ..core.validation import check_number
from ..core.errors import ValidationError
from .runtime_commands import connection, entity, entity_table, open_limiter


def _target(entity_id: str | None, resource: str | None) -> str:
    if entity_id is None and resource is None:
        raise click.UsageError("say what: ENTITY_ID, --resource R (every entity), or both")
    if entity_id is None:
        return f"resource {resource} (every entity)"
    return f"entity {entity_id}" + (f" on resource {resource}" if resource else " (every resource)")


@entity.command("disable")
@click.argument("entity_id", required=False)
@click.option("--resource", help="Only this resource (without ENTITY_ID: this resource for every entity).")
@connection
def entity_disable(entity_id: str | None, resource: str | None, table_name: str, region: str | None,
                   endpoint_url: str | None) -> None:
    """Refuse acquires on ENTITY_ID, a resource, or both (ResourceDisabled, HTTP 403) until enabled."""
    what = _target(entity_id, resource)
    with open_limiter(table_name, region, endpoint_url) as limiter:
        limiter.disable(entity_id=entity_id, resource=resource)
    click.echo(f"disabled {what}")


@entity.command("enable")
@click.argument("entity_id", required=False)
@click.option("--resource", help="Only this resource (without ENTITY_ID: this resource for every entity).")
@connection
def entity_enable(entity_id: str | None, resource: str | None, table_name: str, region: str | None,
                  endpoint_url: str | None) -> None:
    """Lift the flag `disable` set with the same arguments."""
    what = _target(entity_id, resource)
    with open_limiter(table_name, region, endpoint_url) as limiter:
        limiter.enable(entity_id=entity_id, resource=resource)
    click.echo(f"enabled {what}")


@entity.command("set-parent")
@click.argument("entity_id")
@click.argument("parent_id", required=False)
@click.option("--cascade/--no-cascade", default=None,
              help="Whether acquires also take from the parent's limits (default: keep the entity's setting).")
@connection
def entity_set_parent(entity_id: str, parent_id: str | None, cascade: bool | None, table_name: str,
                      region: str | None, endpoint_url: str | None) -> None:
    """Move ENTITY_ID under PARENT_ID (omit PARENT_ID to detach it). Cycles are refused."""
    with open_limiter(table_name, region, endpoint_url) as limiter:
        moved = limiter.set_parent(entity_id, parent_id, cascade=cascade)
    Console().print(entity_table([moved], f"Entity {entity_id}"))


@entity.command("reset")
@click.argument("entity_id")
@click.argument("resource")
@connection
def entity_reset(entity_id: str, resource: str, table_name: str, region: str | None, endpoint_url: str | None) -> None:
    """Fill ENTITY_ID's bucket of RESOURCE: every limit back to capacity (usage history stays)."""
    with open_limiter(table_name, region, endpoint_url) as limiter:
        limiter.reset(entity_id, resource)
    click.echo(f"reset {entity_id} on {resource}")


@entity.command("top-up")
@click.argument("entity_id")
@click.argument("resource")
@click.argument("amounts", nargs=-1, required=True, metavar="NAME=AMOUNT...")
@connection
def entity_top_up(entity_id: str, resource: str, amounts: tuple[str, ...], table_name: str, region: str | None,
                  endpoint_url: str | None) -> None:
    """Add tokens to ENTITY_ID's limits on RESOURCE, each capped at its capacity (e.g. tpm=5000)."""
    parsed: dict[str, Decimal] = {}
    for entry in amounts:
        name, sep, value = entry.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            parsed[name] = Decimal(value)  # as typed: counted to the thousandth at any size
            check_number(name, parsed[name], positive=True)
        except (ValueError, ArithmeticError, ValidationError):
            raise click.BadParameter(f"expected NAME=AMOUNT with a positive amount, got {entry!r}",
                                     param_hint="NAME=AMOUNT") from None
    with open_limiter(table_name, region, endpoint_url) as limiter:
        limiter.top_up(entity_id, resource, **parsed)
        tokens = limiter.available(entity_id, resource)
    click.echo(", ".join(f"{name}: {tokens[name]:,.3f} available" for name in parsed))
