"""The published zae-limiter package, for comparison: its own virtual environment and the runner.

It shares our import name, so it cannot live in our environment: it is installed with pip into a
separate virtual environment (by default `.bench/published-venv`, gitignored) and measured by
published_runner.py running on that environment's python, on the same emulator, reporting JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

REQUIREMENTS = ("zae-limiter==0.17.*", "zae-limiter")  # the version the contract names, else the latest
RUNNER = Path(__file__).with_name("published_runner.py")
DEFAULT_VENV = Path(".bench") / "published-venv"


class PublishedUnavailable(RuntimeError):
    """The published package could not be installed or run; the message says why."""


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def installed_version(venv: Path) -> str | None:
    python = _python(venv)
    if not python.exists():
        return None
    # -I: never the checkout's own zae_limiter, whatever the working directory.
    probe = subprocess.run(
        [str(python), "-I", "-c", "import importlib.metadata as m; print(m.version('zae-limiter'))"],
        capture_output=True, text=True, cwd=tempfile.gettempdir(),
    )
    return (probe.stdout.strip() or None) if probe.returncode == 0 else None


def ensure_published(venv: Path = DEFAULT_VENV, log: Callable[[str], None] = print) -> tuple[Path, str, str]:
    """(python, installed version, requirement that was asked for). Installs on first use."""
    venv = Path(venv).absolute()  # the probes run elsewhere; never resolve(): bin/python is a symlink
    marker = venv / "zae-bench-requirement"
    version = installed_version(venv)
    if version is not None and marker.exists():
        return _python(venv), version, marker.read_text().strip()
    if not _python(venv).exists():
        log(f"creating {venv} for the published zae-limiter")
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        if made.returncode != 0:
            raise PublishedUnavailable(f"cannot create the virtual environment {venv}:\n{_tail(made.stderr)}")
    failures = []
    for requirement in REQUIREMENTS:
        log(f"installing {requirement} into {venv} (pip, once)")
        pip = subprocess.run(
            [str(_python(venv)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", requirement],
            capture_output=True, text=True, cwd=tempfile.gettempdir(),
        )
        if pip.returncode == 0:
            version = installed_version(venv)
            if version is not None:
                marker.write_text(requirement + "\n")
                return _python(venv), version, requirement
        failures.append(f"pip install {requirement}:\n{_tail(pip.stderr or pip.stdout)}")
    raise PublishedUnavailable(
        "the published zae-limiter could not be installed from the package index (offline, or no such "
        f"release?) into {venv}:\n" + "\n".join(failures)
    )


def run_published(
    python: Path,
    endpoint_url: str,
    table_prefix: str,
    scenarios: Sequence[Any],
    apis: Sequence[str],
    settings: Any,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the scenarios on the published package; returns the runner's JSON document."""
    request = {
        "endpoint_url": endpoint_url,
        "table_prefix": table_prefix,
        "scenarios": [scenario.to_dict() for scenario in scenarios],
        "apis": list(apis),
        "settings": settings.to_dict(),
    }
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
           "AWS_DEFAULT_REGION": "us-east-1"}
    with tempfile.TemporaryDirectory(prefix="zae-bench-") as folder:
        # The result goes to a file: a large document on a pipe nobody reads yet would block the runner.
        request["output"] = str(Path(folder) / "published.json")
        process = subprocess.Popen(
            [str(python), "-I", str(RUNNER), "--request", json.dumps(request)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=folder,
        )
        assert process.stderr is not None
        lines = []
        for line in process.stderr:  # progress while it runs, and the traceback if it fails
            lines.append(line)
            if line.startswith("published "):
                log(line.rstrip())
        code = process.wait()
        if code != 0:
            raise PublishedUnavailable(
                f"the published package's runner failed (exit {code}):\n{_tail(''.join(lines), 25)}"
            )
        try:
            return json.loads(Path(request["output"]).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise PublishedUnavailable(f"the runner wrote no result ({error}):\n{_tail(''.join(lines))}") from None
