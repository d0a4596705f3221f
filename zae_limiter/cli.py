"""The `zae-limiter` command line."""

from __future__ import annotations

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zae-limiter")
def cli() -> None:
    """Exact distributed rate limiting on DynamoDB: deploy its infrastructure, run it locally, manage limits."""


def main() -> None:
    cli()
