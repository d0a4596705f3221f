"""The aggregator Lambda's code: the `aggregator` package, the pure core `zae_limiter.core` it is written
against, and `zae_limiter/__init__.py` (which imports nothing until a name is used). Declared, not
discovered: the core is the package the aggregator may import (tests/test_layout.py holds it to that),
so nothing follows import statements to decide what ships.

What ships is still checked: every module's imports that run at import time must be the standard
library, what the Lambda python3.12 runtime provides (boto3 and its dependencies), or a shipped module,
so an import Lambda cannot satisfy is an error here rather than an ImportError on the first batch.

Pure functions: the component wraps the files in a `pulumi.AssetArchive`, and `zae-limiter lambda-export
--output lambda.zip` writes them as a zip with `write_lambda_zip`. No Pulumi import here, so the CLI can
use it without the deploy extra.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
import zipfile
from pathlib import Path
from typing import Iterator

from zae_limiter.core.errors import ZaeLimiterError

HANDLER = "aggregator.handler.handler"  # the function's `handler` setting
PACKAGES = ("aggregator", "zae_limiter")  # ours: shipped as source
# What the archive holds of them: whole packages, and single modules.
SHIPPED_PACKAGES = ("aggregator", "zae_limiter.core")
SHIPPED_MODULES = ("zae_limiter",)  # its __init__: lazy, it imports nothing at import time
RUNTIME = "python3.12"
# Distributions the python3.12 Lambda runtime ships besides the standard library (boto3 and what it needs).
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"})
# `index.handler`: the entry point of a function created by the CloudFormation template (`cfn-template`),
# whose placeholder code CloudFormation writes as index.py; the component's function names HANDLER.
ENTRY_POINT = "index.py"
ENTRY_POINT_SOURCE = (
    b'"""Entry point `index.handler` (the CloudFormation template\'s handler setting): the usage aggregator."""\n'
    b"from aggregator.handler import handler  # noqa: F401\n"
)
# A fixed timestamp, so the same sources always give the same bytes (and no spurious function update).
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class LambdaPackageError(ZaeLimiterError):
    """The aggregator's code cannot be packaged (missing package, or an import Lambda cannot satisfy)."""


def package_dirs(source_root: str | Path | None = None) -> dict[str, Path]:
    """Where `aggregator` and `zae_limiter` live: under `source_root` when given, else where Python
    finds them (a checkout or an installed wheel), located without importing them."""
    dirs: dict[str, Path] = {}
    for name in PACKAGES:
        if source_root is not None:
            path = Path(source_root) / name
        else:
            spec = importlib.util.find_spec(name)
            locations = list(spec.submodule_search_locations or []) if spec else []
            if not locations:
                raise LambdaPackageError(f"package {name!r} not found on sys.path; install zae-limiter or run from a checkout")
            path = Path(locations[0])
        if not path.is_dir():
            raise LambdaPackageError(f"package {name!r} not found at {path}")
        dirs[name] = path
    handler = dirs["aggregator"] / "handler.py"
    if not handler.is_file():
        raise LambdaPackageError(f"the aggregator handler {handler} does not exist")
    return dirs


def _is_test(path: Path, package_dir: Path) -> bool:
    relative = path.relative_to(package_dir)
    return (
        any(part in ("tests", "test", "__pycache__") for part in relative.parts[:-1])
        or path.name.startswith("test_")
        or path.name == "conftest.py"
    )


def _modules(dirs: dict[str, Path]) -> dict[str, Path]:
    """Every shippable module of our packages, by dotted name."""
    found: dict[str, Path] = {}
    for package, directory in dirs.items():
        for path in sorted(directory.rglob("*.py")):
            if _is_test(path, directory):
                continue
            parts = (package, *path.relative_to(directory).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _catches_import_error(node: ast.Try | ast.TryStar) -> bool:
    names = set()
    for handler in node.handlers:
        if handler.type is None:
            return True
        for kind in handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]:
            if isinstance(kind, ast.Name):
                names.add(kind.id)
    return bool(names & {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


def _imports(node: ast.AST, eager: bool = True, optional: bool = False) -> Iterator[tuple[ast.stmt, bool, bool]]:
    """(import statement, runs when the module is imported, guarded by `except ImportError`), for every
    import under `node`. `if TYPE_CHECKING:` blocks are skipped: they never run."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node, eager, optional
        return
    children: list[ast.AST]
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        children = list(node.orelse)
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        eager, children = False, list(ast.iter_child_nodes(node))
    elif isinstance(node, (ast.Try, ast.TryStar)):
        guarded = optional or _catches_import_error(node)
        for child in node.body:
            yield from _imports(child, eager, guarded)
        children = [*node.handlers, *node.orelse, *node.finalbody]
    else:
        children = list(ast.iter_child_nodes(node))
    for child in children:
        yield from _imports(child, eager, optional)


def _targets(node: ast.stmt, module: str, is_package: bool, known: dict[str, Path]) -> list[str]:
    """Absolute names an import statement may load: the module and, for `from x import y`, `x.y`."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        parent = ".".join([*base, *([node.module] if node.module else [])])
    else:
        parent = node.module or ""
    names = [parent]
    names += [f"{parent}.{alias.name}" for alias in node.names if f"{parent}.{alias.name}" in known]
    return names


def _source(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def shipped_modules(dirs: dict[str, Path]) -> dict[str, Path]:
    """The modules the archive holds, by dotted name: the declared packages whole, and the declared
    modules; each checked to import at import time only what Lambda has."""
    known = _modules(dirs)
    shipped = {
        name: path for name, path in known.items()
        if name in SHIPPED_MODULES or any(name == p or name.startswith(p + ".") for p in SHIPPED_PACKAGES)
    }
    stdlib = set(sys.stdlib_module_names)
    problems = []
    for name, path in shipped.items():
        for node, eager, optional in _imports(ast.parse(_source(path), filename=str(path))):
            if not eager or optional:
                continue  # runs later, where a feature the aggregator does not use needs it
            for target in _targets(node, name, path.name == "__init__.py", known):
                top = target.split(".")[0]
                if top in PACKAGES:
                    if target in known and target not in shipped:
                        problems.append(f"{name} imports {target}, which the archive does not hold")
                elif top and top not in stdlib and top not in RUNTIME_PROVIDED:
                    problems.append(f"{name} imports {target!r}, which the {RUNTIME} Lambda runtime lacks")
    if problems:
        raise LambdaPackageError("the aggregator cannot run in Lambda: " + "; ".join(sorted(set(problems))))
    return dict(sorted(shipped.items()))


def lambda_files(source_root: str | Path | None = None) -> dict[str, bytes]:
    """The Lambda code as {path inside the archive: content}, sorted by path. Sources only: no tests,
    caches or compiled files. `source_root` is a directory holding `aggregator/` and `zae_limiter/`
    (default: wherever Python finds them)."""
    dirs = package_dirs(source_root)
    files: dict[str, bytes] = {}
    for name, path in shipped_modules(dirs).items():
        package = name.split(".")[0]
        files[f"{package}/{path.relative_to(dirs[package]).as_posix()}"] = path.read_bytes()
    files[ENTRY_POINT] = ENTRY_POINT_SOURCE
    return dict(sorted(files.items()))


def write_lambda_zip(output: str | Path, source_root: str | Path | None = None) -> Path:
    """Write the Lambda code to a zip that `aws lambda update-function-code --zip-file` accepts.
    The same sources give the same bytes. Returns the path written."""
    output = Path(output)
    files = lambda_files(source_root)
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16  # readable by the Lambda runtime's user
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return output
