"""The `zae-limiter` command line: infrastructure (deploy, status, preview, delete, outputs, program,
lambda-export), the embedded backend (local), and runtime commands (entity, limits, available, usage).

Exit codes: 0 ok, 1 the operation failed (the reason on stderr), 2 bad usage (click's message)."""

from __future__ import annotations

from .group import cli

def main() -> None:
    cli()


from . import control_commands, export_commands, limits_file_commands, local_command, runtime_commands, stack_commands, usage_command  # noqa: E402,F401  (they register on `cli`)
