"""The embedded DynamoDB as a new user meets it: a port that is taken, and a missing `local` extra, each a
one-line message with exit status 1 (the CLI) or an EmbeddedServerError (the API), never a traceback and
never a server that is not ours. Checked in process, through click's runner, as the console script, and
through the pytest plugin. A missing module is simulated: `sys.modules[name] = None` (in this process, or
in the subprocesses through a sitecustomize on PYTHONPATH)."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from zae_limiter import ValidationError
from zae_limiter.cli import cli
from zae_limiter.local import EmbeddedServerError, LocalDynamoDB

SCRIPT = str(Path(sys.executable).with_name("zae-limiter"))
HINT = "pip install 'zae-limiter[local]'"


@pytest.fixture
def held_port():
    """A port on 127.0.0.1 held by a socket of this test (listening, answering nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.fixture
def other_server():
    """Another HTTP server on 127.0.0.1 that answers every GET with 200, as a running moto server (or a
    `zae-limiter local` started earlier) does: the one the limiter used to take for its own."""

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def without(tmp_path: Path, *modules: str) -> dict[str, str]:
    """An environment whose Python processes cannot import `modules`."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text("import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "ModuleNotFoundError" not in stderr
    return lines[0]


# -- a port in use ----------------------------------------------------------------------------------
@pytest.mark.parametrize("holder", ["held_port", "other_server"])
def test_a_port_in_use_is_refused_in_code(holder, request):
    port = request.getfixturevalue(holder)
    local = LocalDynamoDB(port=port)
    with pytest.raises(EmbeddedServerError, match=f"port {port} on 127.0.0.1 is in use"):
        local.start()
    assert local.process is None and local.endpoint_url is None


@pytest.mark.parametrize("holder", ["held_port", "other_server"])
def test_local_on_a_port_in_use_exits_1_without_claiming_success(holder, request):
    port = request.getfixturevalue(holder)
    result = CliRunner().invoke(cli, ["local", "--port", str(port), "--no-aggregator"])
    assert result.exit_code == 1, result.output
    assert f"port {port} on 127.0.0.1 is in use" in result.output
    assert "Embedded DynamoDB on" not in result.output and "export" not in result.output
    ran = subprocess.run([SCRIPT, "local", "--port", str(port)], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 1 and ran.stdout == ""
    assert f"port {port} on 127.0.0.1 is in use" in one_line_error(ran.stderr)


def test_a_free_port_given_is_used():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with LocalDynamoDB(port=port) as url:
        assert url == f"http://127.0.0.1:{port}"


def test_a_bad_port_is_a_validation_error():
    for bad in ("8000", 0, 70000, True):
        with pytest.raises(ValidationError) as raised:
            LocalDynamoDB(port=bad)  # type: ignore[arg-type]
        assert raised.value.field == "port"


# -- the local extra missing ------------------------------------------------------------------------
def test_without_moto_the_api_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "moto", None)
    with pytest.raises(EmbeddedServerError) as raised:
        LocalDynamoDB().start()
    assert HINT in str(raised.value) and "\n" not in str(raised.value)


def test_when_moto_cannot_load_its_server_the_api_names_the_extra(monkeypatch, tmp_path):
    """moto without its `server` extra: the server process cannot import flask. It says so, and the
    caller gets the hint, not the server's traceback."""
    monkeypatch.setenv("PYTHONPATH", without(tmp_path, "flask")["PYTHONPATH"])
    with pytest.raises(EmbeddedServerError) as raised:
        LocalDynamoDB().start()
    message = str(raised.value)
    assert HINT in message and "flask" in message and "\n" not in message and "Traceback" not in message


@pytest.mark.parametrize("missing", ["moto", "flask"])
def test_the_console_script_without_the_extra_says_which_to_install(tmp_path, missing):
    ran = subprocess.run([SCRIPT, "local"], capture_output=True, text=True, timeout=120, env=without(tmp_path, missing))
    assert ran.returncode == 1 and "Embedded DynamoDB on" not in ran.stdout
    assert HINT in one_line_error(ran.stderr)


def test_the_pytest_plugin_without_the_extra_says_which_to_install(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", without(tmp_path, "moto")["PYTHONPATH"])
    pytester.makepyfile(
        textwrap.dedent(
            """
            def test_uses_the_plugin(zae_limiter_sync):
                pass
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    output = result.stdout.str()
    assert f"zae_limiter_endpoint: the embedded DynamoDB needs the local extra: {HINT}" in output
    assert "ModuleNotFoundError" not in output and "Traceback" not in output
