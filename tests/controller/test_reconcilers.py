"""The reconciler parses a migration once per version (a watch event's parse serves reconciles)."""

from __future__ import annotations

from typing import Any

import pytest

from alembic_operator.controller.kubeapi import KubeApi
from alembic_operator.controller.reconcilers import Reconciler
from alembic_operator.model.migrations import MigrationRef
from tests.core.bodies import RUNNER_IMAGE, UID, minimal


def body(version: str, *, uid: str = UID) -> dict[str, Any]:
    raw = minimal()
    raw["metadata"] = {**raw["metadata"], "uid": uid, "resourceVersion": version}
    return raw


def ref_of(raw: dict[str, Any]) -> MigrationRef:
    meta = raw["metadata"]
    return MigrationRef(meta["namespace"], meta["name"], meta["uid"], meta.get("generation", 1))


@pytest.mark.parametrize(
    ("seen", "reconciled", "reused"),
    [
        pytest.param(body("7"), body("7"), True, id="same-version-reuses-the-watch-parse"),
        pytest.param(body("7"), body("8"), False, id="newer-version-is-parsed"),
        pytest.param(body("7"), body("7", uid="other"), False, id="namesake-is-parsed"),
        pytest.param(body(""), body(""), False, id="no-version-no-reuse"),
    ],
)
def test_a_migration_is_parsed_once_per_version(
    seen: dict[str, Any], reconciled: dict[str, Any], reused: bool
) -> None:
    reconciler = Reconciler(KubeApi.__new__(KubeApi), runner_image=RUNNER_IMAGE)
    reconciler.migration_seen(seen)
    watched = reconciler.index.get(seen["metadata"]["namespace"], seen["metadata"]["name"])
    parsed = reconciler._parse(reconciled, ref_of(reconciled))
    assert (parsed is watched) is reused
    assert parsed.ref.uid == reconciled["metadata"]["uid"]


async def test_a_deleted_migration_is_parsed_afresh() -> None:
    reconciler = Reconciler(KubeApi.__new__(KubeApi), runner_image=RUNNER_IMAGE)
    raw = body("7")
    reconciler.migration_seen(raw)
    watched = reconciler.index.get(raw["metadata"]["namespace"], raw["metadata"]["name"])
    reconciler.migration_deleted((raw["metadata"]["namespace"], raw["metadata"]["name"]))
    assert reconciler._parse(raw, ref_of(raw)) is not watched
    reconciler.forget(UID, (raw["metadata"]["namespace"], raw["metadata"]["name"]))
