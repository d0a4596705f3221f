"""The layout the README's architecture section draws, checked on the source: the module-level imports
of zae_limiter, pulumi_component and aggregator form no cycle; the pure core imports neither boto3 nor
threading nor anything above it; no module or function grows past its budget without a reason given here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("zae_limiter", "pulumi_component", "aggregator")
CORE = "zae_limiter.core"
# What the pure core may import, besides itself and the standard library (croniter is imported where a
# schedule is evaluated, inside a function).
CORE_FORBIDDEN = ("boto3", "botocore", "threading", "asyncio", "pulumi", "pulumi_aws", "moto", "click", "rich")
MAX_LINES = 400
# Modules allowed past MAX_LINES, and why.
LONG_MODULES: dict[str, str] = {
    "zae_limiter.core.schema": "DESIGN section 3: key patterns, indexes, attribute names and item codecs live in one "
    "module, the single source of truth of the table layout; split, each half would spell the other's names",
}
MAX_FUNCTION_LINES = 60
# Functions allowed past MAX_FUNCTION_LINES ("module:qualified name"), and why.
LONG_FUNCTIONS: dict[str, str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found[module_name(path)] = path
    return found


def top_level_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules `name` imports when it is imported (not inside functions, not TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def resolve(module: str | None, level: int) -> str:
        if not level:
            return module or ""
        base = package.split(".")
        base = base[: len(base) - (level - 1)] if level > 1 else base
        return ".".join(base + ([module] if module else []))

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    out.add(alias.name)
            elif isinstance(node, ast.ImportFrom):
                base = resolve(node.module, node.level)
                out.add(base)
                for alias in node.names:
                    if f"{base}.{alias.name}" in known:
                        out.add(f"{base}.{alias.name}")

    visit(tree.body)
    return out


def graph() -> dict[str, set[str]]:
    found = sources()
    known = set(found)
    edges = {}
    for name, path in found.items():
        targets = set()
        # The importer's own packages are being imported already when it runs: not a dependency.
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        for target in top_level_imports(name, path, known):
            # Importing a.b.c imports a and a.b first.
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in known and prefix != name and not (prefix in own and prefix != target):
                    targets.add(prefix)
        edges[name] = targets
    return edges


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                walk(target)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            walk(node)


def test_the_core_is_pure():
    found = sources()
    core = {name: path for name, path in found.items() if name == CORE or name.startswith(CORE + ".")}
    assert core, "the core package exists"
    for name, path in core.items():
        for target in top_level_imports(name, path, set(found)):
            top = target.split(".")[0]
            assert top not in CORE_FORBIDDEN, f"{name} imports {target}"
            if top in PACKAGES:
                assert target == CORE or target.startswith(CORE + ".") or target == "zae_limiter", f"{name} imports {target}"


def test_importing_the_core_loads_neither_boto3_nor_the_runtime():
    code = ("import sys, zae_limiter.core.acquire, zae_limiter.core.schema, zae_limiter.core.limits; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'pulumi') "
            "or m in ('zae_limiter.limiter', 'zae_limiter.transport.boto3_path')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_pytest_plugin_imports_only_itself():
    code = ("import sys; import zae_limiter.testing; "
            "print(sorted(m for m in sys.modules if m.startswith('zae_limiter') or m.split('.')[0] == 'boto3'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['zae_limiter', 'zae_limiter.testing']"


def test_modules_stay_small():
    for name, path in sources().items():
        lines = len(path.read_text().splitlines())
        if name in LONG_MODULES:
            continue
        assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES}, or a reason in LONG_MODULES)"


def _functions(tree: ast.AST, prefix: str = ""):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                yield name, node.end_lineno - node.lineno + 1
            yield from _functions(node, f"{name}.")
        else:
            yield from _functions(node, prefix)


def test_functions_stay_small():
    long = []
    for name, path in sources().items():
        for function, lines in _functions(ast.parse(path.read_text())):
            if lines > MAX_FUNCTION_LINES and f"{name}:{function}" not in LONG_FUNCTIONS:
                long.append(f"{name}:{function} ({lines} lines)")
    assert long == [], f"functions over {MAX_FUNCTION_LINES} lines (split them, or give a reason in LONG_FUNCTIONS)"
