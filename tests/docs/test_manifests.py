"""The manifests shown in the docs, the README and examples/: found, and well-formed.

This module extracts them; tests/delivery/test_real_apiserver.py applies every one to a real
kube-apiserver with strict field validation (a misspelt field is refused, not dropped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.docs.conftest import REPO, fenced_blocks, markdown_files

KIND = "DatabaseMigration"


def _doc_manifests() -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for path in markdown_files():
        text = path.read_text(encoding="utf-8")
        for info, body, line in fenced_blocks(text):
            if info.split()[:1] not in (["yaml"], ["yml"]):
                continue
            where = f"{path.relative_to(REPO)}:{line}"
            for n, doc in enumerate(yaml.safe_load_all(body)):
                found.append((f"{where}#{n}", doc))
    return found


def _example_manifests() -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for path in sorted((REPO / "examples").rglob("*.y*ml")):
        for n, doc in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            found.append((f"{path.relative_to(REPO)}#{n}", doc))
    return found


DOC_MANIFESTS = _doc_manifests()
EXAMPLE_MANIFESTS = _example_manifests()
MIGRATIONS = [
    pytest.param(doc, id=where)
    for where, doc in DOC_MANIFESTS + EXAMPLE_MANIFESTS
    if isinstance(doc, dict) and doc.get("kind") == KIND
]


def test_the_docs_show_manifests() -> None:
    """The extraction works: the guides carry many DatabaseMigrations, examples/ some more."""
    from_docs = [d for _, d in DOC_MANIFESTS if isinstance(d, dict) and d.get("kind") == KIND]
    from_examples = [
        d for _, d in EXAMPLE_MANIFESTS if isinstance(d, dict) and d.get("kind") == KIND
    ]
    assert len(from_docs) >= 8
    assert len(from_examples) >= 3


@pytest.mark.parametrize("manifest", MIGRATIONS)
def test_migration_manifest_is_named(manifest: dict[str, Any]) -> None:
    assert manifest["apiVersion"] == "alembic-operator.dev/v1alpha1"
    assert manifest.get("metadata", {}).get("name"), "a manifest to copy needs a name"


@pytest.mark.parametrize(
    ("where", "doc"),
    [pytest.param(w, d, id=w) for w, d in DOC_MANIFESTS + EXAMPLE_MANIFESTS],
)
def test_every_yaml_block_is_a_kubernetes_object(where: str, doc: Any) -> None:
    """Other manifests (Secrets, Deployments, Jobs) are at least well-formed objects."""
    if doc is None:  # an empty document between --- separators
        return
    assert isinstance(doc, dict), f"{where}: not a mapping"
    if "kind" not in doc:  # a values.yaml fragment or similar, not an object
        return
    assert "/" in doc["apiVersion"] or doc["apiVersion"] == "v1", where
    assert doc.get("metadata", {}).get("name"), f"{where}: {doc['kind']} without a name"


def test_example_files_exist() -> None:
    assert Path(REPO / "examples" / "databasemigration.yaml").exists()
