"""Invalid resources are refused by the CRD itself (422 with its message); nothing runs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.operator.harness import Cluster, migration


def without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    node = body
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return body


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(migration("a", revision="../etc"), "spec.revision", id="path-in-revision"),
        pytest.param(migration("b", revision="a b"), "spec.revision", id="space-in-revision"),
        pytest.param(
            without(migration("c"), "spec", "database", "urlSecretRef"),
            "spec.database.urlSecretRef",
            id="no-secret-ref",
        ),
        pytest.param(without(migration("d"), "spec", "image"), "spec.image", id="no-image"),
        pytest.param(migration("e", backoffLimit=-1), "spec.backoffLimit", id="negative-backoff"),
        pytest.param(
            migration(
                "f", database={"urlSecretRef": {"name": "s", "key": "url"}, "lock": "sometimes"}
            ),
            "spec.database.lock",
            id="bad-enum",
        ),
        pytest.param(
            migration("g", env=[{"name": "X", "value": "postgresql://u:pw@h/db"}]),
            "spec.env",
            id="credentials-in-env",
        ),
        pytest.param(
            migration("h", alembic={"xArgs": {"url": "mysql://u:pw@h/db"}}),
            "spec.alembic.xArgs",
            id="credentials-in-xargs",
        ),
    ],
)
async def test_invalid_migration_is_rejected(
    cluster: Cluster, body: dict[str, Any], fragment: str
) -> None:
    status, answer = await cluster.client.post(cluster.DBM, body)
    assert status == 422, answer
    assert answer["reason"] == "Invalid"
    assert fragment in answer["message"]
    assert 'DatabaseMigration.alembic-operator.dev "' in answer["message"]
    assert (await cluster.client.get(f"{cluster.DBM}/{body['metadata']['name']}"))[0] == 404


async def test_secret_reference_is_immutable(cluster: Cluster) -> None:
    await cluster.create(migration("shop", secret="missing", suspend=True))
    status, answer = await cluster.client.patch(
        f"{cluster.DBM}/shop",
        {"spec": {"database": {"urlSecretRef": {"name": "other", "key": "url"}}}},
    )
    assert status == 422, answer
    assert "immutable" in answer["message"]
    assert (await cluster.jobs("shop")) == []
