"""docs/crd-reference.md is exactly what scripts/crd_reference.py renders from crds/."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.docs.conftest import DOCS, REPO

SCRIPT = REPO / "scripts" / "crd_reference.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crd_reference", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("crd_reference", module)
    spec.loader.exec_module(module)
    return module


def test_reference_is_up_to_date(script: ModuleType) -> None:
    expected = script.render(script.load_crd())
    current = (DOCS / "crd-reference.md").read_text(encoding="utf-8")
    assert current == expected, (
        "docs/crd-reference.md is stale: run .venv/bin/python scripts/crd_reference.py"
    )


def _property_paths(schema: dict[str, Any], path: str) -> Iterator[str]:
    for name, child in (schema.get("properties") or {}).items():
        here = f"{path}.{name}" if path else name
        yield here
        yield from _property_paths(child, here)
        items = child.get("items")
        if isinstance(items, dict):
            yield from _property_paths(items, f"{here}[]")


def test_every_field_and_its_description_is_in_the_reference(script: ModuleType) -> None:
    crd = script.load_crd()
    text = script.render(crd)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    paths = list(_property_paths(schema, ""))
    assert len(paths) > 100
    missing = [p for p in paths if f"| `{p}` |" not in text]
    assert missing == []
    # Descriptions are copied (whitespace folded), so the CRD's words are what the reader sees.
    assert "no field holds a URL or a password" in text
    assert "Internal bookkeeping of the kopf framework" in text


def test_constraints_and_defaults_are_rendered(script: ModuleType) -> None:
    text = script.render(script.load_crd())
    row = next(line for line in text.splitlines() if line.startswith("| `spec.database.lock` |"))
    assert '`"advisory"`' in row and "one of `advisory`, `none`" in row
    row = next(line for line in text.splitlines() if "| `spec.database.urlSecretRef` |" in line)
    assert "rule `self == oldSelf`" in row and "is immutable" in row
    row = next(line for line in text.splitlines() if "| `status.observedGeneration` |" in line)
    assert "`-1`" in row
    # Every table row has the six columns (no pipe inside a cell broke the table).
    for line in text.splitlines():
        if line.startswith("| `"):
            cells = re.split(r"(?<!\\)\|", line)
            assert len(cells) == 8, line


def test_check_mode_reports_a_stale_file(
    script: ModuleType, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    stale = tmp_path / "crd-reference.md"
    stale.write_text("old\n")
    monkeypatch.setattr(script, "OUTPUT_PATH", stale)
    monkeypatch.setattr(script, "REPO", tmp_path)
    assert script.main(["--check"]) == 1
    assert "run .venv/bin/python scripts/crd_reference.py" in capsys.readouterr().err
    assert script.main([]) == 0
    assert script.main(["--check"]) == 0
