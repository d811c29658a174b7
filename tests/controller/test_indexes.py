"""The gate index: the newest migration per name, and which migrations gate a Deployment."""

from __future__ import annotations

from typing import Any

import pytest

from alembic_operator.controller.caches import Store, key_of, uid_of, version_of
from alembic_operator.controller.indexes import GateIndex
from alembic_operator.model.migrations import parse_migration
from tests.core.bodies import UID, metadata, minimal

NS = metadata()["namespace"]


def gated(name: str = "shop", *, uid: str = UID, rv: str = "1", **gate: Any) -> dict[str, Any]:
    """A migration body gating ``gate`` (default: the Deployment web)."""
    body = minimal(gate=gate or {"deployments": ["web"]})
    body["metadata"] = {**metadata(name, uid=uid), "resourceVersion": rv}
    return body


def seen(store: Store[dict[str, Any]], body: dict[str, Any]) -> None:
    store.seen(key_of(body), body, uid=uid_of(body), version=version_of(body))


def test_the_status_just_written_is_not_replaced_by_a_late_event() -> None:
    store: Store[dict[str, Any]] = Store()
    index = GateIndex(store)
    seen(store, gated(rv="10"))
    newer = gated(rv="12", deployments=["web", "worker"])
    store.written(key_of(newer), newer, uid=UID, version="12")  # this process's write
    seen(store, gated(rv="11", deployments=["nothing"]))  # a late watch event
    assert index.get(NS, "shop") == parse_migration(newer)
    seen(store, newer)  # the watch echoes the write: its order again
    seen(store, later := gated(rv="13", deployments=["api"]))
    assert index.get(NS, "shop") == parse_migration(later)


def test_a_recreated_namesake_replaces_the_old_incarnation() -> None:
    store: Store[dict[str, Any]] = Store()
    index = GateIndex(store)
    seen(store, gated(rv="20"))
    fresh = gated(uid="another-uid", rv="5", deployments=["api"])
    seen(store, fresh)  # a new object: its version is not comparable
    assert index.get(NS, "shop") == parse_migration(fresh)


def test_an_invalid_migration_gates_nothing() -> None:
    store: Store[dict[str, Any]] = Store()
    invalid = gated()
    del invalid["spec"]["database"]
    seen(store, invalid)
    assert GateIndex(store).gating(NS, "web", {}) == []


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
    store: Store[dict[str, Any]] = Store()
    index = GateIndex(store)
    seen(store, gated(**gate))
    found = index.gating(NS, deployment, labels)
    assert (len(found) == 1) is expected
    assert index.gating("elsewhere", deployment, labels) == []


def test_a_deleted_migration_leaves_the_index() -> None:
    store: Store[dict[str, Any]] = Store()
    index = GateIndex(store)
    seen(store, gated())
    store.gone((NS, "shop"), uid=UID)
    assert index.get(NS, "shop") is None
    assert index.gating(NS, "web", {}) == []
