"""Every DatabaseMigration shown in the docs, the README and examples/ is accepted by the CRD.

The manifests are validated by the same admission code the apiserver emulator uses (OpenAPI
schema, defaults, CEL rules). Beyond that, nothing a reader copies may be silently pruned: a
misspelt field would be dropped by the apiserver (or refused by kubectl's strict validation).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from alembic_operator.emulation.admission import SchemaViolation, validator_for
from tests.docs.conftest import REPO, fenced_blocks, markdown_files

CRD_PATH = REPO / "crds" / "databasemigrations.yaml"
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


@pytest.fixture(scope="module")
def validate() -> Any:
    crd = yaml.safe_load(CRD_PATH.read_text(encoding="utf-8"))
    return validator_for(crd, "v1alpha1")


def _leaf_paths(value: Any, path: str = "") -> set[str]:
    if isinstance(value, dict):
        paths = {path} if not value else set()
        for key, child in value.items():
            paths |= _leaf_paths(child, f"{path}.{key}")
        return paths
    if isinstance(value, list):
        paths = {path} if not value else set()
        for i, child in enumerate(value):
            paths |= _leaf_paths(child, f"{path}[{i}]")
        return paths
    return {path}


def test_the_docs_show_manifests() -> None:
    """The extraction works: the guides carry many DatabaseMigrations, examples/ some more."""
    from_docs = [d for _, d in DOC_MANIFESTS if isinstance(d, dict) and d.get("kind") == KIND]
    from_examples = [
        d for _, d in EXAMPLE_MANIFESTS if isinstance(d, dict) and d.get("kind") == KIND
    ]
    assert len(from_docs) >= 8
    assert len(from_examples) >= 3


@pytest.mark.parametrize("manifest", MIGRATIONS)
def test_migration_manifest_is_valid(validate: Any, manifest: dict[str, Any]) -> None:
    assert manifest["apiVersion"] == "alembic-operator.dev/v1alpha1"
    assert manifest.get("metadata", {}).get("name"), "a manifest to copy needs a name"
    try:
        stored = validate(copy.deepcopy(manifest), None)
    except SchemaViolation as exc:
        pytest.fail(f"refused by the CRD: {exc.message}")
    pruned = _leaf_paths(manifest) - _leaf_paths(stored)
    assert pruned == set(), f"fields the apiserver would drop (unknown to the CRD): {pruned}"


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
