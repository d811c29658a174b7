"""Fixtures for the CRD tests: the canonical CRD, and admission by the real apiserver."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.crd.apiserver import Admission
from tests.crd.manifests import load_crd


@pytest.fixture(scope="session")
def crd() -> dict[str, Any]:
    return load_crd()


@pytest.fixture(scope="session")
def validator(control_plane: ControlPlane) -> Iterator[Admission]:
    """Server-side dry runs against kube-apiserver v1.36.2 with the canonical CRD installed."""
    name = "crd-admission"
    control_plane.request(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    yield Admission(control_plane, name)
    control_plane.request("DELETE", f"/api/v1/namespaces/{name}")
