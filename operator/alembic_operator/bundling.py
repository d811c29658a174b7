"""Builds the embedded runner: the runner's modules concatenated into one self-contained file.

The Job's init container writes this file into an ``emptyDir``; the application container runs it
with its own Python, Alembic and SQLAlchemy. The embedded modules import each other only as
``from alembic_operator.x import name``; those imports are dropped, the others are hoisted to the
top, and a clash of top-level names between modules is an error (so the file means the same as the
package). This module reads source text only: it must not import the runner (or Alembic).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from alembic_operator import __version__

PACKAGE_DIR = Path(__file__).resolve().parent

# Dependency order: each module imports only modules listed before it.
EMBEDDED_MODULES = (
    "alembic_operator.redaction",
    "alembic_operator.model.reasons",
    "alembic_operator.model.results",
    "alembic_operator.core.revisions",
    "alembic_operator.runner.settings",
    "alembic_operator.runner.database",
    "alembic_operator.runner.locking",
    "alembic_operator.runner.scripts",
    "alembic_operator.runner.output",
    "alembic_operator.runner.main",
)

RUNNER_FILE_NAME = "runner.py"
OURS = "alembic_operator"


class BundleError(Exception):
    """The embedded modules break a rule that keeps the single file equivalent to the package."""


@dataclass(frozen=True)
class _Module:
    name: str
    imports: tuple[str, ...]
    body: str
    defines: frozenset[str]


def _source_path(module: str) -> Path:
    return PACKAGE_DIR.joinpath(*module.split(".")[1:]).with_suffix(".py")


def _read(module: str, *, earlier: set[str]) -> _Module:
    source = _source_path(module).read_text(encoding="utf-8")
    tree = ast.parse(source)
    lines = source.splitlines()
    drop: set[int] = set()
    imports: list[str] = []
    defines: set[str] = set()
    for index, node in enumerate(tree.body):
        span = range(node.lineno - 1, (node.end_lineno or node.lineno))
        is_docstring = (
            index == 0
            and isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        )
        is_future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        ours = isinstance(node, ast.ImportFrom) and (node.module or "").startswith(OURS)
        if is_docstring or is_future:
            drop.update(span)
        elif ours:
            assert isinstance(node, ast.ImportFrom)
            if node.module not in earlier:
                raise BundleError(f"{module} imports {node.module}, not embedded before it")
            drop.update(span)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any(a.name.startswith("alembic_operator") for a in getattr(node, "names", ())):
                raise BundleError(f"{module}: import names from alembic_operator modules only")
            imports.append("\n".join(lines[i] for i in span))
            drop.update(span)
        else:
            defines.update(_top_level_names(node))
    body = "\n".join(line for i, line in enumerate(lines) if i not in drop).strip("\n")
    return _Module(module, tuple(imports), body, frozenset(defines))


def _top_level_names(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, ast.AnnAssign):
        targets = [node.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def build_runner_source() -> str:
    """The embedded runner's source text."""
    modules: list[_Module] = []
    earlier: set[str] = set()
    for name in EMBEDDED_MODULES:
        modules.append(_read(name, earlier=earlier))
        earlier.add(name)
    owner: dict[str, str] = {}
    for module in modules:
        for defined in module.defines:
            if defined in owner:
                raise BundleError(f"{defined!r} defined in {owner[defined]} and {module.name}")
            owner[defined] = module.name
    imports: list[str] = []
    for module in modules:
        imports.extend(i for i in module.imports if i not in imports)
    parts = [
        "#!/usr/bin/env python3",
        f'"""alembic-operator {__version__} embedded migration runner (generated: do not edit).',
        "",
        "Built from the modules of the alembic_operator package by alembic_operator.bundling.",
        "Imports only the standard library, alembic and sqlalchemy. Usage and exit codes:",
        "docs/runner.md. The database URL is read from DATABASE_URL.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "import gc",
        "",
        'if __name__ == "__main__":',
        "    # A one-shot process: the imports and definitions below run without the cyclic",
        "    # garbage collector and are frozen before main() (see alembic_operator.cli).",
        "    gc.disable()",
        "",
        *imports,
    ]
    for module in modules:
        parts += ["", "", f"# ---- {module.name} " + "-" * (80 - len(module.name)), "", module.body]
    parts += [
        "",
        "",
        'if __name__ == "__main__":',
        "    gc.freeze()",
        "    gc.enable()",
        "    raise SystemExit(main())",
        "",
    ]
    return "\n".join(parts)


def write_runner(path: Path) -> Path:
    """Write the embedded runner to ``path`` (a directory gets ``runner.py``)."""
    target = path / RUNNER_FILE_NAME if path.is_dir() else path
    target.write_text(build_runner_source(), encoding="utf-8")
    target.chmod(0o755)
    return target
