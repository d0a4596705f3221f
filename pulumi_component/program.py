"""The one Pulumi program, with its three entry points: Pulumi.yaml (`pulumi up` in a checkout, through
`program_from_config`), the CLI and `create_stack` (the Automation API's inline program, through
`zae_limiter_program`). Both end in `zae_limiter_program`, so they deploy the same resources for the
same configuration.

Stack outputs: every key of `EXPORTS`, always. The aggregator's (function_name, function_arn,
log_group_name) are None when it is disabled, so readers of the outputs never meet a missing key.
"""

from __future__ import annotations

from dataclasses import fields

import pulumi

from zae_limiter.core.errors import ValidationError
from zae_limiter.stack_defaults import COMPONENT_NAME
from zae_limiter.stack_options import StackOptions, config_key

from .args import ZaeLimiterArgs
from .component import OUTPUT_KEYS, ZaeLimiter

DEFAULT_NAME = COMPONENT_NAME
TABLE_NAME_KEY = "tableName"
# Every component output but the queue URL, which only the component's own users need.
EXPORTS = tuple(key for key in OUTPUT_KEYS if key != "dlq_url")


def zae_limiter_program(table_name: str, options: StackOptions, name: str = DEFAULT_NAME) -> ZaeLimiter:
    """Instantiate the component for `table_name` configured by `options`, and export its outputs."""
    component = ZaeLimiter(name, ZaeLimiterArgs.from_options(table_name, options))
    for key in EXPORTS:
        pulumi.export(key, getattr(component, key))
    return component


def config_keys() -> dict[str, str]:
    """Config key (as `pulumi config set` takes it) of every option, by option name."""
    return {f.name: config_key(f.name) for f in fields(StackOptions)}


def program_from_config(config: pulumi.Config | None = None) -> ZaeLimiter:
    """The standalone program: `tableName` (required) and the options' camelCase keys
    (`StackOptions.as_config()`) from the stack's configuration. A bad value raises ValidationError
    naming the config key to fix."""
    config = config if config is not None else pulumi.Config()
    table_name = config.get(TABLE_NAME_KEY)
    if not table_name:
        raise ValidationError(f"config {TABLE_NAME_KEY}", f"required: run `pulumi config set {TABLE_NAME_KEY} <table name>`")
    keys = {**config_keys(), "table_name": TABLE_NAME_KEY}
    try:
        return zae_limiter_program(table_name, StackOptions.from_config(config.get))
    except ValidationError as error:
        key = keys.get(error.field)
        if key is None:
            raise
        message = str(error)[len(error.field) + 2 :]
        raise ValidationError(f"config {key}", message) from None
