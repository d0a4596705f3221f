"""`zae-limiter local`: the embedded DynamoDB for development, up until interrupted."""

from __future__ import annotations

import signal
import threading

import click

from ..core.errors import ValidationError
from ..local import LocalDynamoDB, ensure_table
from ..stack_defaults import OPTION_DEFAULTS, REGION, TABLE_NAME
from ..stack_options import StackOptions
from .group import cli
from .options import region_option, table_option, usage_error


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@cli.command()
@table_option(default=TABLE_NAME, help="Table to create (from the schema module).", envvar=None)
@region_option(default=REGION, help="Region clients should use.", envvar=None)
@click.option("--port", type=click.IntRange(1, 65535),
              help="Port on 127.0.0.1 (default: a free one). A port in use is an error (exit 1), never shared.")
@click.option("--no-aggregator", is_flag=True, help="Do not run the usage aggregator on the table's stream.")
@click.option("--snapshot-windows", default=OPTION_DEFAULTS["snapshot_windows"], show_default=True, help="Usage windows the aggregator keeps.")
def local(table_name: str, region: str, port: int | None, no_aggregator: bool, snapshot_windows: str) -> None:
    """Start an embedded DynamoDB (moto) on 127.0.0.1 with the table created and the usage aggregator
    following its stream, as the Lambda does on AWS; stop with Ctrl-C."""
    try:
        StackOptions(snapshot_windows=snapshot_windows)  # the aggregator's rule, checked before anything starts
    except ValidationError as error:
        raise usage_error(click.get_current_context(), error) from error
    # A service manager stops with SIGTERM: unwind like Ctrl-C, so the server process goes too. Ctrl-C
    # gets its handler too: a process started with SIGINT ignored (by a parent that ignores it; a
    # background job of a script) would otherwise never see it, and Python keeps it ignored.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    stop = threading.Event()
    with LocalDynamoDB(port=port) as endpoint_url:
        ensure_table(table_name, endpoint_url=endpoint_url, region=region)
        follower = None
        if not no_aggregator:
            from ..local_stream import follow_stream

            follower = threading.Thread(
                target=follow_stream,
                kwargs={"table_name": table_name, "endpoint_url": endpoint_url, "stop": stop, "region": region,
                        "windows": snapshot_windows},
                name="zae-limiter-aggregator",
                daemon=True,
            )
            follower.start()
        click.echo(f"Embedded DynamoDB on {endpoint_url} with table {table_name}"
                   + ("" if no_aggregator else ", usage aggregator following its stream") + ".")
        click.echo("Point clients and the zae-limiter CLI at it:")
        click.echo(f"  export ZAE_LIMITER_ENDPOINT_URL={endpoint_url}")
        click.echo(f"  export ZAE_LIMITER_TABLE={table_name}")
        click.echo(f"  export AWS_DEFAULT_REGION={region}")
        click.echo("  export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local", nl=True)
        click.echo("Press Ctrl-C to stop.", err=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            click.echo("stopping", err=True)
        finally:
            stop.set()
            if follower is not None:
                follower.join(timeout=10)
