"""lambda-export, cfn-template and program: the Lambda code as a zip, the infrastructure as a CloudFormation
template, and the component as an editable Pulumi project."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..stack import check_project_name, check_stack_name, stack_config
from ..stack_defaults import CODE_ARCHIVE, COMPONENT_NAME, PROJECT, REGION, TABLE_NAME
from ..stack_options import StackOptions
from .group import cli
from .options import checked, deployment_options, region_option, stack_options_from, table_option

PROGRAM = '''"""The zae-limiter infrastructure as your own Pulumi program: add your resources beside it.

Settings come from the stack's configuration (`pulumi config set tableName {table}`, and the
optional keys in Pulumi.{{stack}}.yaml). `pulumi up` deploys; `pulumi destroy` removes everything.
"""

import pulumi

from pulumi_component import ZaeLimiter, ZaeLimiterArgs
from pulumi_component.program import EXPORTS
from zae_limiter import StackOptions

config = pulumi.Config()
limiter = ZaeLimiter(
    {component},
    ZaeLimiterArgs.from_options(config.require("tableName"), StackOptions.from_config(config.get)),
)

for key in EXPORTS:
    pulumi.export(key, getattr(limiter, key))
'''.format(component=json.dumps(COMPONENT_NAME), table=TABLE_NAME)

# With `program --limits FILE`: the file (copied beside the program) applied as Pulumi resources, so
# `pulumi preview` shows the limits' changes next to the infrastructure's.
LIMITS_PROGRAM = '''
# The stored limits of LIMITS_FILE (`zae-limiter limits plan/apply` reads the same format): one resource
# per entity, resource defaults and system defaults, in the table the component made.
from pathlib import Path

from pulumi_component import ZaeLimits, ZaeLimitsArgs

ZaeLimits(
    "zae-limiter-limits",
    ZaeLimitsArgs(
        table_name=limiter.table_name,
        spec=Path(__file__).with_name(LIMITS_FILE),
        region=pulumi.Config("aws").get("region"),
    ),
)
'''
LIMITS_FILE = "limits.yaml"

PROJECT_FILE = """name: {project}
description: zae-limiter rate limiter infrastructure (DynamoDB table, usage aggregator, alarms, IAM policies)
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: venv
"""


def _yaml_scalar(value: str) -> str:
    # JSON strings are valid YAML scalars, and say exactly what they hold.
    return json.dumps(value)


def stack_file(config: dict[str, str]) -> str:
    lines = ["config:"]
    plain = {k: v for k, v in config.items() if "[" not in k}
    for key in sorted(plain):
        lines.append(f"  {key}: {_yaml_scalar(plain[key])}")
    return "\n".join(lines) + "\n"


def _limits_files(path: str) -> dict[str, str]:
    """The project's files that change with a limits file, checked first (a bad file writes nothing)."""
    from ..limits_spec import SpecError, load_text

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise click.BadParameter(f"cannot read {path}: {getattr(error, 'strerror', None) or error}", param_hint="--limits") from error
    try:
        load_text(text, path)
    except SpecError as error:
        raise click.BadParameter(str(error), param_hint="--limits") from error
    return {
        "__main__.py": PROGRAM + LIMITS_PROGRAM.replace("LIMITS_FILE", repr(LIMITS_FILE)),
        LIMITS_FILE: text,
        "requirements.txt": f"zae-limiter[deploy,limits]=={__version__}\n",
    }


@cli.command("lambda-export")
@click.option("--output", "-o", default=CODE_ARCHIVE, show_default=True, type=click.Path(dir_okay=False, writable=True),
              help="Zip file to write.")
def lambda_export(output: str) -> None:
    """Write the aggregator Lambda's code as a zip (for `aws lambda update-function-code --zip-file`)."""
    from pulumi_component.lambda_package import lambda_files, write_lambda_zip

    try:
        written = write_lambda_zip(output)
    except OSError as error:
        raise click.ClickException(f"cannot write {output}: {error.strerror or error}") from error
    click.echo(f"wrote {written} ({written.stat().st_size:,} bytes, {len(lambda_files())} files; handler "
               "aggregator.handler.handler, or index.handler as in the cfn-template function)")


@cli.command("cfn-template")
@table_option(default=TABLE_NAME, help="Default of the template's TableName parameter.", envvar=None)
@deployment_options
@click.option("--output", "-o", type=click.File("w", lazy=True), default="-",
              help="File to write (default: standard output).")
def cfn_template(table_name: str, output: Any, **params: Any) -> None:
    """Print the infrastructure as a CloudFormation template (for `aws cloudformation deploy`).

    The same resources as `deploy`, generated from the same sources. TableName, SnapshotWindows,
    SnapshotRetentionDays, EnablePITR, PITRRecoveryDays and LogRetentionDays stay template parameters (the
    options give their defaults); the other options are fixed in the template. The function is
    named STACK-aggregator; upload its code after deploying (lambda-export, then aws lambda
    update-function-code) or pass CodeS3Bucket and CodeS3Key.
    """
    from pulumi_component.cloudformation import template_json

    options = stack_options_from(params)
    try:
        output.write(template_json(options, table_name))
        output.close()
    except OSError as error:
        raise click.ClickException(f"cannot write {output.name}: {error.strerror or error}") from error


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False))
@table_option(default=TABLE_NAME, help="DynamoDB table name (config tableName).", envvar=None)
@region_option()
@click.option("--project-name", default=PROJECT, show_default=True, help="Pulumi project name (and config namespace).",
              callback=checked(lambda field, value: check_project_name(value, field)))
@click.option("--stack", "stack", default="dev", show_default=True, help="Stack whose configuration file is written.",
              callback=checked(lambda field, value: check_stack_name(value, field)))
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@click.option("--limits", "limits_file", type=click.Path(exists=True, dir_okay=False, readable=True),
              help="A limits file (as `limits apply` reads) to copy into the project and apply with it, as ZaeLimits "
              "resources.")
@deployment_options
def program(directory: str, table_name: str, region: str | None, project_name: str, stack: str, force: bool,
            limits_file: str | None, **settings: Any) -> None:
    """Write a ready Pulumi project in DIRECTORY that deploys the component: the Pulumi-native way to get
    an editable template. Then: cd DIRECTORY && pulumi stack init dev && pulumi up."""
    options: StackOptions = stack_options_from(settings)
    target = Path(directory)
    files = {
        "Pulumi.yaml": PROJECT_FILE.format(project=project_name),
        f"Pulumi.{stack}.yaml": stack_file(stack_config(table_name, region or REGION, options, project=project_name)),
        "__main__.py": PROGRAM,
        "requirements.txt": f"zae-limiter[deploy]=={__version__}\n",
    }
    if limits_file is not None:
        files.update(_limits_files(limits_file))
    existing = [name for name in files if (target / name).exists()]
    if existing and not force:
        raise click.UsageError(f"{', '.join(existing)} already exist in {target}; pass --force to overwrite")
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (target / name).write_text(content)
    except OSError as error:
        raise click.ClickException(f"cannot write the project to {target}: {error.strerror or error}") from error
    click.echo(f"wrote {', '.join(files)} to {target}")
    click.echo(f"next: cd {target} && pulumi stack init {stack} && pulumi up")
