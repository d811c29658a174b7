"""Builders for the CRD tests: the canonical CRD, the examples, and DatabaseMigration objects."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

DELETE: Any = object()  # with_path(..., DELETE) removes the field
REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / "databasemigrations.yaml"
EXAMPLES = REPO / "examples"


def load_crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())


def example_migrations() -> list[tuple[str, dict[str, Any]]]:
    """Every DatabaseMigration in examples/ as (file name, object)."""
    found = []
    for path in sorted(EXAMPLES.glob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "DatabaseMigration":
                found.append((path.name, doc))
    return found


def minimal(**spec: Any) -> dict[str, Any]:
    """The smallest valid DatabaseMigration, with spec fields overridden/added."""
    body: dict[str, Any] = {
        "image": "ghcr.io/acme/shop:1.4.2",
        "database": {"urlSecretRef": {"name": "shop-db", "key": "url"}},
    }
    body.update(spec)
    return {
        "apiVersion": "alembic-operator.dev/v1alpha1",
        "kind": "DatabaseMigration",
        "metadata": {"name": "shop", "namespace": "default"},
        "spec": body,
    }


def with_path(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of obj with the dotted path set (a value of DELETE removes it)."""
    result = copy.deepcopy(obj)
    *parents, last = path.split(".")
    node = result
    for name in parents:
        node = node.setdefault(name, {})
    if value is DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return result
