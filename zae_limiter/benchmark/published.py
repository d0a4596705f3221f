"""The published zae-limiter package, for comparison: its own virtual environment and the runner.

It shares our import name, so it cannot live in our environment: it is installed with pip into a
separate virtual environment (by default `.bench/published-venv`, gitignored) and measured by
published_runner.py running on that environment's python, on the same emulator, driven command by
command (RemoteSystem) so that its cells run round by round with ours.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

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


class RemoteSystem:
    """The published package as a system of rounds.measure: published_runner.py on its environment's
    python, alive for the whole run, told each step on stdin (one JSON line per command) and answering
    on stdout, so that its cells run round by round between ours."""

    def __init__(self, python: Path, endpoint_url: str, table_prefix: str) -> None:
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
               "AWS_DEFAULT_REGION": "us-east-1"}
        self.table_prefix = table_prefix
        self._stderr: list[str] = []
        self._folder = tempfile.TemporaryDirectory(prefix="zae-bench-")
        self.process = subprocess.Popen(
            [str(python), "-I", str(RUNNER), "--serve", endpoint_url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            cwd=self._folder.name, bufsize=1,
        )
        # Read stderr all along: a full pipe nobody reads would block the runner.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)
            del self._stderr[:-40]

    def call(self, command: str, **arguments: Any) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(json.dumps({"command": command, **arguments}) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            self.process.wait(timeout=30)
            raise PublishedUnavailable(f"the published package's runner ended (exit {self.process.returncode}) "
                                       f"during {command}:\n{_tail(''.join(self._stderr), 25)}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise PublishedUnavailable(f"the published package's runner failed: {answer['error']}\n"
                                       f"{_tail(''.join(self._stderr), 15)}")
        return answer["result"]

    def versions(self) -> dict:
        return self.call("versions")

    def prepare(self, scenario: Any, api: str, cells: int) -> None:
        table = f"{self.table_prefix}-{scenario.name}-{api}"
        self.call("prepare", scenario=scenario.to_dict(), api=api, cells=cells, table=table)

    def capacity_pass(self, settings: Any) -> dict:
        return self.call("capacity_pass", settings=settings.to_dict())

    def open_cell(self, index: int, concurrency: int, processes: int, settings: Any) -> "RemoteCell":
        return RemoteCell(self, dict(index=index, concurrency=concurrency, processes=processes,
                                     settings=settings.to_dict()))

    def usage(self) -> None:
        return None

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.call("quit")
            except PublishedUnavailable:
                pass
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._folder.cleanup()


class RemoteCell:
    """A cell of the runner: opened, run slice by slice, closed, each step one command."""

    def __init__(self, system: RemoteSystem, shape: dict) -> None:
        self.system = system
        self.shape = shape

    def open(self) -> dict:
        return self.system.call("open_cell", **self.shape)

    def run(self, seconds: float | None, iterations: int | None) -> dict:
        return self.system.call("run", seconds=seconds, iterations=iterations)

    def close(self) -> None:
        self.system.call("close_cell")
