"""The `zae-limiter` command line: infrastructure (deploy, status, preview, delete, outputs, program,
lambda-export), the embedded backend (local), and runtime commands (entity, limits, available, usage).

Exit codes: 0 ok, 1 the operation failed (the reason on stderr), 2 bad usage (click's message)."""

from __future__ import annotations

from typing import Any

import click

from .. import __version__
from ..errors import ValidationError, ZaeLimiterError


class ZaeLimiterGroup(click.Group):
    """Turns the library's errors into the CLI's exit codes: bad input is a usage error (2), anything
    else that failed is an operation error (1). Never a traceback for an expected failure."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ValidationError as error:
            raise click.UsageError(str(error), ctx) from error
        except ZaeLimiterError as error:
            raise click.ClickException(str(error)) from error


@click.group(name="zae-limiter", cls=ZaeLimiterGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zae-limiter")
def cli() -> None:
    """Exact distributed rate limiting on DynamoDB: deploy its infrastructure, run it locally, manage limits."""


def main() -> None:
    cli()


from . import control_commands, export_commands, limits_file_commands, local_command, runtime_commands, stack_commands, usage_command  # noqa: E402,F401  (register)
