"""Builds the embedded runner: a zipapp of the runner and the package modules it imports.

The Job's init container writes this archive into an ``emptyDir``; the application container runs
it with its own Python, Alembic and SQLAlchemy (``python runner.pyz ARGS``). Python puts the
archive on ``sys.path`` and runs its ``__main__``, so the runner's modules are the package's own
files, unchanged and under their own names: any module may import any other in any form. The
archive is made by the standard library's :mod:`zipapp` (PEP 441) from a staging directory next
to the target, the one place known to be writable (the init container's root filesystem is
read-only). Entries are stored, not deflated, so a Python built without zlib runs it too.

This module reads source files only: it must not import the runner (or Alembic).
"""

from __future__ import annotations

import shutil
import tempfile
import zipapp
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
OURS = PACKAGE_DIR.name

# What the runner imports of ours (tests/runner/test_embedded.py checks that nothing is missing),
# with the packages' __init__ modules. Standard library only, Python 3.9 (pyproject.toml).
EMBEDDED_MODULES = (
    "alembic_operator",
    "alembic_operator.redaction",
    "alembic_operator.model",
    "alembic_operator.model.reasons",
    "alembic_operator.model.results",
    "alembic_operator.core",
    "alembic_operator.core.revisions",
    "alembic_operator.runner",
    "alembic_operator.runner.entry",
    "alembic_operator.runner.settings",
    "alembic_operator.runner.database",
    "alembic_operator.runner.locking",
    "alembic_operator.runner.scripts",
    "alembic_operator.runner.output",
    "alembic_operator.runner.main",
)
ENTRY_POINT = "alembic_operator.runner.entry:run"
INTERPRETER = "/usr/bin/env python3"
RUNNER_FILE_NAME = "runner.py"


def module_path(module: str) -> Path:
    """The archive's path of ``module`` (a package is its ``__init__.py``)."""
    parts = Path(*module.split("."))
    package = PACKAGE_DIR.parent / parts / "__init__.py"
    return parts / "__init__.py" if package.is_file() else parts.with_suffix(".py")


def write_runner(path: Path) -> Path:
    """Write the embedded runner to ``path`` (a directory gets ``runner.py``)."""
    target = path / RUNNER_FILE_NAME if path.is_dir() else path
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".runner-") as staging:
        for module in EMBEDDED_MODULES:
            relative = module_path(module)
            (Path(staging) / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PACKAGE_DIR.parent / relative, Path(staging) / relative)
        zipapp.create_archive(staging, target, interpreter=INTERPRETER, main=ENTRY_POINT)
    target.chmod(0o755)  # zipapp sets the owner's x bit only; the app container may be another user
    return target
