"""The product declares every package it imports: pyproject's ``[project].dependencies``.

A package that arrives only as a dependency of a dependency (``yaml`` through kopf, ``urllib3``
through kubernetes) can disappear with that dependency's next release, and the image installs
only what is declared (Dockerfile). Imports are read from the source (every ``import``, also the
lazy ones inside functions) and mapped to the distributions that provide them.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "operator" / "alembic_operator"
_providers = functools.cache(importlib.metadata.packages_distributions)  # reads every dist-info


def _normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()  # PEP 503


def declared() -> set[str]:
    """The distributions ``[project].dependencies`` names (PEP 508: the name comes first)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = (re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", d) for d in project["dependencies"])
    return {_normalized(n.group()) for n in names if n}


def imported(paths: Iterable[Path]) -> dict[str, set[str]]:
    """Top-level third-party modules imported by ``paths`` -> the files importing them."""
    found: dict[str, set[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names and top != "alembic_operator":
                    found.setdefault(top, set()).add(path.name)
    return found


def undeclared(paths: Iterable[Path], dependencies: set[str]) -> dict[str, str]:
    """Each imported module no declared distribution provides -> why, with its importers."""
    providers = _providers()
    missing = {}
    for module, files in sorted(imported(paths).items()):
        candidates = {_normalized(d) for d in providers.get(module, [])}
        if not candidates & dependencies:
            provided = ", ".join(sorted(candidates)) or "no installed distribution"
            missing[module] = f"provided by {provided}; imported by {', '.join(sorted(files))}"
    return missing


def test_every_imported_package_is_declared() -> None:
    assert undeclared(PACKAGE.rglob("*.py"), declared()) == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("import yaml", {"yaml"}, id="undeclared-top-level"),
        pytest.param("def f():\n    from urllib3 import exceptions", {"urllib3"}, id="lazy"),
        pytest.param("import aiohttp.web", {"aiohttp"}, id="submodule"),
        pytest.param("import no_such_module_here", {"no_such_module_here"}, id="not-installed"),
        pytest.param("import json, kopf\nfrom alembic_operator import cli", set(), id="declared"),
        pytest.param("from . import sibling", set(), id="relative"),
    ],
)
def test_the_check_finds_a_planted_undeclared_import(
    source: str, expected: set[str], tmp_path: Path
) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(source)
    assert set(undeclared([planted], {"kopf"})) == expected
