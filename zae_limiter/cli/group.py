"""The root `zae-limiter` group and the error handling every command shares."""

from __future__ import annotations

from typing import Any

import click

from .. import __version__
from ..core.errors import ValidationError, ZaeLimiterError


class ZaeLimiterCommand(click.Command):
    """A command whose bad input is reported on the option or argument it came from, by its CLI name
    (`--entity`, not `entity_id`): the library's ValidationError names its field, options.parameter_of
    finds the parameter."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ValidationError as error:
            from .options import usage_error

            raise usage_error(ctx, error) from error


class ZaeLimiterGroup(click.Group):
    """Turns the library's errors into the CLI's exit codes: bad input is a usage error (2), anything
    else that failed is an operation error (1). Never a traceback for an expected failure. Its commands
    and subgroups are ZaeLimiterCommands and ZaeLimiterGroups."""

    command_class = ZaeLimiterCommand
    group_class = type  # subgroups are of this class too

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
