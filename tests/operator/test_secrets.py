"""A missing database Secret (or key): no Job, SecretNotFound, and progress once it exists."""

from __future__ import annotations

import base64
from typing import Any

from tests.databases import Database
from tests.operator.harness import Cluster, condition, migration, reasons_in_order, stays, wait_for
from tests.runner.harness import HEAD


async def _pending(cluster: Cluster, name: str) -> dict[str, Any]:
    async def reported() -> dict[str, Any] | None:
        status = await cluster.status(name)
        ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)
        return status if ready and ready["reason"] == "SecretNotFound" else None

    return dict(await wait_for(reported, what=f"{name} to report SecretNotFound"))


async def _waiting(cluster: Cluster, name: str) -> tuple[Any, ...]:
    status = await cluster.status(name)
    events = await cluster.events(name)
    return (
        len(await cluster.jobs(name)),
        status.get("phase"),
        status.get("message"),
        [(e["reason"], e["type"]) for e in events],
    )


async def test_missing_secret_then_created(cluster: Cluster, pg_database: Database) -> None:
    await cluster.create(migration("shop", secret="shop-db"))
    status = await _pending(cluster, "shop")
    assert status["phase"] == "Pending"
    ready = condition(status, "Ready")
    assert ready["status"] == "False"
    assert "Secret 'shop-db' not found" in ready["message"]
    assert condition(status, "Stalled")["status"] == "False"
    assert "shop-db" in status["message"]
    # Retried with backoff meanwhile (two more passes), but no Job, and the Event is posted
    # once. The backoff keeps a retry due within seconds for a while: settled here means no pass
    # queued or running, whatever the next retry's time.
    jobs, *_, events = await stays(
        cluster,
        lambda: _waiting(cluster, "shop"),
        what="the waiting migration",
        passes=2,
        horizon=0,
    )
    assert jobs == 0
    assert events == [("SecretNotFound", "Warning")]

    await cluster.create_secret("shop-db", pg_database.url)
    status = await cluster.wait_phase("shop", "Succeeded", within=30)
    assert status["currentRevision"] == HEAD
    assert condition(status, "Ready")["reason"] == "Applied"
    assert pg_database.versions() == {HEAD}
    assert len(await cluster.jobs("shop")) == 1
    assert await reasons_in_order(cluster, "shop") == [
        "SecretNotFound",
        "MigrationStarted",
        "MigrationSucceeded",
    ]


async def test_secret_without_the_key(cluster: Cluster, pg_database: Database) -> None:
    await cluster.create_secret("shop-db", pg_database.url, key="uri")
    await cluster.create(migration("shop", secret="shop-db"))
    status = await _pending(cluster, "shop")
    assert status["phase"] == "Pending"
    assert "key 'url' not found in Secret 'shop-db'" in status["message"]
    assert "key 'url'" in condition(status, "Ready")["message"]
    # The Event follows the status write just seen.
    events = await wait_for(lambda: cluster.events("shop"), what="the SecretNotFound Event")
    assert [(e["reason"], e["type"]) for e in events] == [("SecretNotFound", "Warning")]
    assert "'url'" in events[0]["message"]
    assert await cluster.jobs("shop") == []

    # Adding the key lets it proceed.
    url = base64.b64encode(pg_database.url.encode()).decode()
    await cluster.client.ok(
        "PATCH",
        f"{cluster.SECRETS}/shop-db",
        {"data": {"url": url}},
        content_type="application/merge-patch+json",
    )
    await cluster.wait_phase("shop", "Succeeded", within=30)
    assert pg_database.versions() == {HEAD}
    assert len(await cluster.jobs("shop")) == 1
