"""`zae-limiter local`: the embedded DynamoDB for development, up until interrupted."""

from __future__ import annotations

import threading

import click

from ..local import LocalDynamoDB, ensure_table
from . import cli


@cli.command()
@click.option("--table-name", default="rate_limits", show_default=True, help="Table to create (from the schema module).")
@click.option("--region", default="us-east-1", show_default=True, help="Region clients should use.")
@click.option("--port", type=click.IntRange(1, 65535), help="Port on 127.0.0.1 (default: a free one).")
def local(table_name: str, region: str, port: int | None) -> None:
    """Start an embedded DynamoDB (moto) on 127.0.0.1 with the table created; stop with Ctrl-C."""
    with LocalDynamoDB(port=port) as endpoint_url:
        ensure_table(table_name, endpoint_url=endpoint_url, region=region)
        click.echo(f"Embedded DynamoDB on {endpoint_url} with table {table_name}.")
        click.echo("Point clients and the zae-limiter CLI at it:")
        click.echo(f"  export ZAE_LIMITER_ENDPOINT_URL={endpoint_url}")
        click.echo(f"  export ZAE_LIMITER_TABLE={table_name}")
        click.echo(f"  export AWS_DEFAULT_REGION={region}")
        click.echo("  export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local")
        click.echo("Press Ctrl-C to stop.", err=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            click.echo("stopped", err=True)
