"""The aggregator's Lambda archive: what it holds, that its handler imports from it alone, and that the
packager refuses code the Lambda runtime could not run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import boto3
import pulumi
import pytest

from component_mocks import deploy
from pulumi_component import ZaeLimiter, ZaeLimiterArgs
from pulumi_component.lambda_package import (
    ENTRY_POINT,
    ENTRY_POINT_SOURCE,
    HANDLER,
    RUNTIME_PROVIDED,
    LambdaPackageError,
    lambda_files,
    write_lambda_zip,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return lambda_files()


def test_archive_holds_the_aggregator_the_core_and_nothing_else(files):
    aggregator = {f"aggregator/{p.name}" for p in (ROOT / "aggregator").glob("*.py") if not p.name.startswith("test_")}
    core = {f"zae_limiter/core/{p.name}" for p in (ROOT / "zae_limiter" / "core").glob("*.py")}
    assert set(files) == aggregator | core | {"zae_limiter/__init__.py", ENTRY_POINT}
    assert files[ENTRY_POINT] == ENTRY_POINT_SOURCE  # index.handler, the CloudFormation template's setting
    for name, content in files.items():
        assert name.endswith(".py") and "__pycache__" not in name and "/tests/" not in name, name
        if name != ENTRY_POINT:
            assert content == (ROOT / name).read_bytes(), name  # the package's own files, as they are


def _runtime_paths() -> list[str]:
    return [sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]]


def test_handler_imports_from_the_archive_alone(files, tmp_path):
    for name, content in files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    # -S: no site-packages processing, so the editable install of this checkout is invisible; boto3's
    # directory is on the path (Lambda provides boto3), and the check below refuses any module the
    # handler loads from it besides boto3's own.
    site_packages = str(Path(boto3.__file__).resolve().parent.parent)
    probe = textwrap.dedent(
        """
        import importlib, json, sys
        import boto3, botocore.config, botocore.exceptions  # what the runtime itself loads with boto3
        baseline = set(sys.modules)
        module_name, _, attr = sys.argv[1].rpartition(".")
        handler = getattr(importlib.import_module(module_name), attr, None)
        loaded = {name: getattr(m, "__file__", None) for name, m in list(sys.modules.items()) if name not in baseline}
        print(json.dumps({"callable": callable(handler), "loaded": loaded}))
        """
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), site_packages])
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe, HANDLER], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["callable"] is True
    stdlib = [str(Path(p).resolve()) for p in _runtime_paths()]
    for name, path in report["loaded"].items():
        if path is None:
            continue
        resolved = str(Path(path).resolve())
        if resolved.startswith(str(tmp_path.resolve())):
            continue
        if resolved.startswith(site_packages):
            assert name.split(".")[0] in RUNTIME_PROVIDED, f"{name} came from {path}"
            continue
        assert any(resolved.startswith(p) for p in stdlib), f"{name} came from {path}"
    assert report["loaded"]["aggregator.handler"].startswith(str(tmp_path))
    assert report["loaded"]["zae_limiter.core.schema"].startswith(str(tmp_path))


def test_zip_is_reproducible_and_holds_the_files(files, tmp_path):
    first = write_lambda_zip(tmp_path / "one" / "lambda.zip")
    second = write_lambda_zip(tmp_path / "two.zip")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        assert archive.testzip() is None
        assert {info.filename: archive.read(info) for info in archive.infolist()} == files
        assert all((info.external_attr >> 16) & 0o444 == 0o444 for info in archive.infolist())


def test_component_ships_the_same_files(files):
    deployment = deploy(lambda: ZaeLimiter("limits", ZaeLimiterArgs("rate_limits")))
    (function,) = deployment.of_type("aws:lambda/function:Function")
    code = function.inputs["code"]
    assert isinstance(code, pulumi.AssetArchive)
    assert {name: asset.text.encode() for name, asset in code.assets.items()} == files


# -- the packager's rules, on small source trees --------------------------------------------------
def make_tree(root: Path, handler: str, extra: dict[str, str] | None = None) -> Path:
    (root / "aggregator").mkdir(parents=True)
    (root / "zae_limiter" / "core").mkdir(parents=True)
    (root / "aggregator" / "__init__.py").write_text("")
    (root / "aggregator" / "handler.py").write_text(textwrap.dedent(handler))
    # As the real package: an __init__ that imports nothing, the runtime beside the pure core.
    (root / "zae_limiter" / "__init__.py").write_text("def __getattr__(name):\n    raise AttributeError(name)\n")
    (root / "zae_limiter" / "heavy.py").write_text("import click\nLimiter = 1\n")
    (root / "zae_limiter" / "core" / "__init__.py").write_text("")
    (root / "zae_limiter" / "core" / "schema.py").write_text("from .errors import Oops\nPK = 'PK'\n")
    (root / "zae_limiter" / "core" / "errors.py").write_text("class Oops(Exception):\n    pass\n")
    for name, text in (extra or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_ships_the_declared_packages_whole_and_leaves_the_rest(tmp_path):
    root = make_tree(
        tmp_path,
        """
        import json
        from typing import TYPE_CHECKING
        import boto3
        from zae_limiter.core import schema
        if TYPE_CHECKING:
            import pulumi
        try:
            import ujson
        except ImportError:
            ujson = None

        def handler(event, context):
            from zae_limiter.core.errors import Oops
            return {}
        """,
        {"aggregator/tests/test_x.py": "import pytest\n", "aggregator/__pycache__/x.py": "", "zae_limiter/tests/conftest.py": ""},
    )
    assert sorted(lambda_files(root)) == [
        "aggregator/__init__.py", "aggregator/handler.py", "index.py",
        "zae_limiter/__init__.py", "zae_limiter/core/__init__.py", "zae_limiter/core/errors.py", "zae_limiter/core/schema.py",
    ]  # heavy.py (and click) stay out: not in a shipped package


@pytest.mark.parametrize(
    "handler, complaint",
    [
        ("import requests\n", "imports 'requests', which the python3.12 Lambda runtime lacks"),
        ("from zae_limiter.core.schema import PK\nimport rich.console\n", "imports 'rich.console'"),
        ("from zae_limiter import heavy\n", "imports zae_limiter.heavy, which the archive does not hold"),
    ],
)
def test_refuses_what_lambda_cannot_import(tmp_path, handler, complaint):
    with pytest.raises(LambdaPackageError, match="the aggregator cannot run in Lambda") as raised:
        lambda_files(make_tree(tmp_path, handler))
    assert complaint in str(raised.value)


def test_a_module_level_import_in_a_shipped_zae_limiter_module_counts(tmp_path):
    root = make_tree(tmp_path, "from zae_limiter.core import schema\n", {"zae_limiter/core/schema.py": "import click\nPK = 'PK'\n"})
    with pytest.raises(LambdaPackageError, match="zae_limiter.core.schema imports 'click'"):
        lambda_files(root)


def test_missing_handler_is_a_clear_error(tmp_path):
    root = make_tree(tmp_path, "")
    (root / "aggregator" / "handler.py").unlink()
    with pytest.raises(LambdaPackageError, match="handler.py does not exist"):
        lambda_files(root)
