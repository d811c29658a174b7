"""Every manifest the project ships is accepted by a real kube-apiserver v1.36.2.

``crds/``, the chart rendered in its main value combinations, ``examples/`` and every manifest in
``docs/`` are applied with the real kubectl as a server-side apply, dry run, with strict field
validation (an unknown or misspelt field is an error, not silently dropped). Kinds whose API
this cluster does not serve — the Prometheus operator's, cert-manager's, Flux's — cannot be
checked here; they are listed in :data:`FOREIGN_KINDS` and the test fails on any other kind
it cannot apply (nothing is skipped silently). Their content is covered elsewhere
(promtool for the rules, tests/delivery for the chart's templates).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.controlplane import ControlPlane
from tests.cluster.fixtures import kubectl
from tests.delivery.conftest import VALUE_SETS
from tests.delivery.tools import REPO
from tests.docs.test_manifests import DOC_MANIFESTS, EXAMPLE_MANIFESTS

FOREIGN_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("cert-manager.io/v1", "Certificate"),
    ("cert-manager.io/v1", "Issuer"),
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
}
# Namespaces the rendered chart and its value sets place objects in.
CHART_NAMESPACES = ("ops", "a", "b", "shop", "monitoring")


def apply_dry_run(
    control_plane: ControlPlane, objects: list[dict[str, Any]], namespace: str | None = None
) -> str:
    args = ["apply", "--server-side", "--dry-run=server", "--validate=strict", "--force-conflicts"]
    if namespace:
        args += ["--namespace", namespace]
    return kubectl(control_plane, *args, "-f", "-", stdin=yaml.safe_dump_all(objects))


def applicable(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if (o.get("apiVersion"), o.get("kind")) not in FOREIGN_KINDS]


@pytest.fixture(scope="module")
def chart_namespaces(control_plane: ControlPlane) -> Iterator[None]:
    created = []
    for name in CHART_NAMESPACES:
        if control_plane.request("GET", f"/api/v1/namespaces/{name}") is None:
            control_plane.request(
                "POST", "/api/v1/namespaces", {"metadata": {"name": name}, "apiVersion": "v1",
                                                "kind": "Namespace"}
            )  # fmt: skip
            created.append(name)
    yield
    for name in created:
        control_plane.request("DELETE", f"/api/v1/namespaces/{name}")


def test_crds_are_accepted(control_plane: ControlPlane) -> None:
    out = kubectl(
        control_plane, "apply", "--server-side", "--dry-run=server", "--validate=strict",
        "--force-conflicts", "-f", str(REPO / "crds"),
    )  # fmt: skip
    assert "serverside-applied (server dry run)" in out


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_the_rendered_chart_is_accepted(
    control_plane: ControlPlane, chart_namespaces: None, rendered: dict[str, str], value_set: str
) -> None:
    objects = [o for o in yaml.safe_load_all(rendered[value_set]) if o]
    kinds = {(o["apiVersion"], o["kind"]) for o in objects}
    assert kinds - FOREIGN_KINDS, "nothing to apply"
    out = apply_dry_run(control_plane, applicable(objects))
    assert out.count("serverside-applied (server dry run)") == len(applicable(objects)), out


SHOWN = [
    (where, doc)
    for where, doc in DOC_MANIFESTS + EXAMPLE_MANIFESTS
    if isinstance(doc, dict) and "kind" in doc and "apiVersion" in doc
]


def test_only_foreign_kinds_are_left_out() -> None:
    left_out = {(d["apiVersion"], d["kind"]) for _, d in SHOWN} - {
        (d["apiVersion"], d["kind"]) for d in applicable([d for _, d in SHOWN])
    }
    assert left_out <= FOREIGN_KINDS
    assert len(applicable([d for _, d in SHOWN])) >= 30


@pytest.mark.parametrize("manifest", [pytest.param(d, id=w) for w, d in SHOWN if applicable([d])])
def test_docs_and_examples_are_accepted(
    control_plane: ControlPlane, namespace: str, manifest: dict[str, Any]
) -> None:
    """Applied into the test's namespace (any namespace the manifest names is replaced)."""
    obj = dict(manifest)
    obj["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "namespace"}
    out = apply_dry_run(control_plane, [obj], namespace)
    assert "serverside-applied (server dry run)" in out, out


def test_every_example_file_is_covered() -> None:
    files = {Path(where.split("#")[0]) for where, _ in EXAMPLE_MANIFESTS}
    assert Path("examples/databasemigration.yaml") in files
    assert Path("examples/sandbox/migration.yaml") in files
