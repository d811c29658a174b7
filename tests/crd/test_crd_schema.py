"""The canonical CRD: identity, printer columns, a structural, documented, bounded schema."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import re2  # google-re2: the same RE2 syntax as Go's regexp and CEL's matches()

from tests.cluster.controlplane import ControlPlane
from tests.cluster.fixtures import kubectl
from tests.crd.manifests import CRD_PATH


def walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with a readable path (maps as 'x.*', list items as 'x[]')."""
    yield path or "<root>", schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from walk(sub, f"{path}.{name}" if path else name)
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}.*")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")


@pytest.fixture(scope="module")
def version(crd: dict[str, Any]) -> dict[str, Any]:
    (only,) = crd["spec"]["versions"]
    return only


@pytest.fixture(scope="module")
def schema(version: dict[str, Any]) -> dict[str, Any]:
    return version["schema"]["openAPIV3Schema"]


def test_identity(crd: dict[str, Any], version: dict[str, Any]) -> None:
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == "databasemigrations.alembic-operator.dev"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"]) == ("alembic-operator.dev", "Namespaced")
    assert spec["names"] == {
        "kind": "DatabaseMigration",
        "listKind": "DatabaseMigrationList",
        "plural": "databasemigrations",
        "singular": "databasemigration",
        "shortNames": ["dbm", "dbmig"],
        "categories": ["alembic-operator"],
    }
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_printer_columns(version: dict[str, Any]) -> None:
    columns = [
        (c["name"], c["type"], c["jsonPath"], c.get("priority", 0))
        for c in version["additionalPrinterColumns"]
    ]
    assert columns == [
        ("Phase", "string", ".status.phase", 0),
        ("Target", "string", ".status.targetRevision", 0),
        ("Current", "string", ".status.currentRevision", 0),
        ("Duration", "number", ".status.durationSeconds", 0),
        ("Age", "date", ".metadata.creationTimestamp", 0),
        ("Message", "string", ".status.message", 1),
    ]


def test_the_real_apiserver_accepts_it(control_plane: ControlPlane) -> None:
    """kube-apiserver v1.36.2 checks the schema is structural, compiles every CEL rule (with
    its cost budget) and validates every default against its schema and rules."""
    out = kubectl(
        control_plane, "apply", "--server-side", "--validate=strict", "--dry-run=server",
        "--force-conflicts", "-f", str(CRD_PATH),
    )  # fmt: skip
    assert "databasemigrations.alembic-operator.dev serverside-applied (server dry run)" in out
    crd = control_plane.request(
        "GET",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
        "databasemigrations.alembic-operator.dev",
    )
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions.get("NonStructuralSchema", "False") == "False"


def test_documented(schema: dict[str, Any]) -> None:
    for path, node in walk(schema):
        if path != "metadata":  # the apiserver refuses anything but name/generateName there
            assert node.get("description", "").strip(), f"{path} has no description"
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"


def test_unknown_fields_are_not_preserved_except_documented_spots(schema: dict[str, Any]) -> None:
    preserved = [p for p, n in walk(schema) if n.get("x-kubernetes-preserve-unknown-fields")]
    assert preserved == [
        "spec.affinity.nodeAffinity",
        "spec.affinity.podAffinity",
        "spec.affinity.podAntiAffinity",
        "status.kopf",
    ]


def test_sizes_are_bounded(schema: dict[str, Any]) -> None:
    """Bounded strings, lists and maps keep the apiserver's CEL cost estimate within budget."""
    for path, node in walk(schema):
        if path.startswith(("<root>", "apiVersion", "kind", "metadata")):
            continue
        if node.get("type") == "string" and "format" not in node:
            assert "maxLength" in node or "enum" in node, f"{path}: no maxLength"
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path}: no maxItems"
        if isinstance(node.get("additionalProperties"), dict):
            assert "maxProperties" in node, f"{path}: no maxProperties"


def test_patterns_are_re2(schema: dict[str, Any]) -> None:
    patterns = [(p, n["pattern"]) for p, n in walk(schema) if "pattern" in n]
    assert len(patterns) > 20
    for path, pattern in patterns:
        re2.compile(pattern)
        re.compile(pattern)
        assert pattern.startswith("^") and pattern.endswith("$"), f"{path}: unanchored pattern"


def test_defaults_are_where_the_design_says(schema: dict[str, Any]) -> None:
    """Each default is valid: test_the_real_apiserver_accepts_it (the apiserver checks them)."""
    defaults = [(p, n) for p, n in walk(schema) if "default" in n]
    assert {p for p, _ in defaults} >= {
        "spec.revision",
        "spec.database.lock",
        "spec.database.lockTimeoutSeconds",
        "spec.alembic.config",
        "spec.alembic.python",
        "spec.runner.type",
        "spec.approval.required",
        "spec.gate.mode",
        "spec.activeDeadlineSeconds",
        "spec.backoffLimit",
        "spec.suspend",
        "spec.dryRun",
        "spec.allowDowngrade",
        "status.observedGeneration",
    }


def test_rules_explain_themselves(schema: dict[str, Any]) -> None:
    """The rules compile: test_the_real_apiserver_accepts_it; here, their messages."""
    rules = [(p, r) for p, n in walk(schema) for r in n.get("x-kubernetes-validations", [])]
    assert len(rules) >= 15
    for path, rule in rules:
        text = rule.get("message") or rule.get("messageExpression")
        assert text, f"{path}: rule {rule['rule']!r} has no message"
        assert "\n" not in text, f"{path}: messages must be one line"
        assert rule.get("reason", "FieldValueInvalid") in {
            "FieldValueInvalid",
            "FieldValueRequired",
            "FieldValueForbidden",
            "FieldValueDuplicate",
        }


def test_crd_round_trips_through_json(crd: dict[str, Any]) -> None:
    """What kubectl sends is the JSON form: nothing YAML-only (dates, anchors) may sneak in."""
    assert json.loads(json.dumps(crd)) == crd
