"""The console script exists and answers --help and --version, in-process and as a real subprocess."""

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from zae_limiter import __version__
from zae_limiter.cli import cli


def test_help_and_version_in_process():
    runner = CliRunner()
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0 and "DynamoDB" in result.output
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_console_script_runs_as_a_subprocess():
    script = Path(sys.executable).with_name("zae-limiter")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert __version__ in result.stdout
