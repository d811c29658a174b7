"""The gate index: the newest migration per name, and which migrations gate a Deployment."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from alembic_operator.controller.indexes import GateIndex
from alembic_operator.model.migrations import Migration
from tests.core.observations import migration

NS = migration().ref.namespace


def gated(name: str = "shop", *, uid: str | None = None, **gate: Any) -> Migration:
    m = migration(gate=gate or {"deployments": ["web"]})
    m = replace(m, ref=replace(m.ref, name=name))
    return replace(m, ref=replace(m.ref, uid=uid)) if uid else m


def test_a_newer_resource_version_wins_an_older_one_does_not() -> None:
    index = GateIndex()
    index.put(gated(), resource_version="10")
    newer = gated(deployments=["web", "worker"])
    index.put(newer, resource_version="12")
    index.put(gated(deployments=["nothing"]), resource_version="11")  # a late watch event
    assert index.get(NS, "shop") == newer


def test_a_recreated_namesake_replaces_the_old_incarnation() -> None:
    index = GateIndex()
    index.put(gated(), resource_version="20")
    fresh = gated(uid="another-uid", deployments=["api"])
    index.put(fresh, resource_version="5")  # a new object: its version is not comparable
    assert index.get(NS, "shop") == fresh


@pytest.mark.parametrize(
    ("gate", "deployment", "labels", "expected"),
    [
        pytest.param({"deployments": ["web"]}, "web", {}, True, id="by-name"),
        pytest.param({"deployments": ["web"]}, "api", {}, False, id="other-name"),
        pytest.param(
            {"selector": {"matchLabels": {"app": "shop"}}},
            "api",
            {"app": "shop"},
            True,
            id="by-selector",
        ),
        pytest.param(
            {"selector": {"matchLabels": {"app": "shop"}}},
            "api",
            {"app": "x"},
            False,
            id="selector-miss",
        ),
        pytest.param(
            {
                "selector": {
                    "matchExpressions": [
                        {"key": "tier", "operator": "In", "values": ["web", "api"]}
                    ]
                }
            },
            "api",
            {"tier": "api"},
            True,
            id="match-expression",
        ),
    ],
)
def test_gating(
    gate: dict[str, Any], deployment: str, labels: dict[str, str], expected: bool
) -> None:
    index = GateIndex()
    index.put(gated(**gate), resource_version="1")
    found = index.gating(NS, deployment, labels)
    assert (len(found) == 1) is expected
    assert index.gating("elsewhere", deployment, labels) == []


def test_drop_forgets() -> None:
    index = GateIndex()
    index.put(gated(), resource_version="1")
    index.drop(NS, "shop")
    assert index.get(NS, "shop") is None
    assert index.gating(NS, "web", {}) == []
