"""The reconciler parses a migration once per version (the store's parse serves reconciles)."""

from __future__ import annotations

from typing import Any

import pytest
from lightkube.config.kubeconfig import KubeConfig

from alembic_operator.controller.kubeapi import KubeApi
from alembic_operator.controller.reconcilers import Reconciler
from alembic_operator.model.migrations import MigrationRef
from tests.core.bodies import RUNNER_IMAGE, UID, minimal

# Never opened: these tests send no request (the store is fed by hand, as the watch would).
NOWHERE = KubeConfig.from_server("https://127.0.0.1:1").get()


def body(version: str, *, uid: str = UID) -> dict[str, Any]:
    raw = minimal()
    raw["metadata"] = {**raw["metadata"], "uid": uid, "resourceVersion": version}
    return raw


def ref_of(raw: dict[str, Any]) -> MigrationRef:
    meta = raw["metadata"]
    return MigrationRef(meta["namespace"], meta["name"], meta["uid"], meta.get("generation", 1))


def reconciler() -> tuple[KubeApi, Reconciler]:
    api = KubeApi(NOWHERE)
    return api, Reconciler(api, runner_image=RUNNER_IMAGE, leading=False)  # no reconcile runs


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
    api, rec = reconciler()
    api.migration_seen(seen)
    watched = rec.index.get(seen["metadata"]["namespace"], seen["metadata"]["name"])
    parsed = rec._parse(reconciled, ref_of(reconciled))
    assert (parsed is watched) is reused
    assert parsed.ref.uid == reconciled["metadata"]["uid"]


async def test_a_deleted_migration_is_parsed_afresh() -> None:
    api, rec = reconciler()
    raw = body("7")
    api.migration_seen(raw)
    key = (raw["metadata"]["namespace"], raw["metadata"]["name"])
    watched = rec.index.get(*key)
    api.migration_gone(*key, uid=UID)
    rec.migration_deleted(key)
    assert rec.index.get(*key) is None
    assert rec._parse(raw, ref_of(raw)) is not watched
    rec.forget(UID, key)
