"""Plans, approval, rejection and dry runs end to end (issue 7)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.databases import Database
from tests.operator.harness import Cluster, condition, migration, reasons_in_order, wait_for
from tests.runner.harness import HEAD, run_runner

APPROVE = "alembic-operator.dev/approve"
REJECT = "alembic-operator.dev/reject"


async def awaiting(cluster: Cluster, name: str, *, not_hash: str | None = None) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        status = await cluster.status(name)
        plan = status.get("plan") or {}
        if status.get("phase") == "AwaitingApproval" and plan.get("hash") != not_hash:
            return status
        return None

    return dict(await wait_for(ready, within=60, what=f"{name} to await approval"))


async def test_approval_flow(cluster: Cluster, pg_database: Database) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    await cluster.create(migration("shop", approval={"required": True}))
    status = await awaiting(cluster, "shop")
    plan = status["plan"]
    assert condition(status, "Ready")["reason"] == "ApprovalPending"
    assert plan["direction"] == "upgrade" and plan["destructive"] is False
    assert len(plan["revisions"]) == 10 and plan["fromRevision"] == ""
    assert f"{APPROVE}={plan['hash']}" in status["message"]
    assert pg_database.tables() == set()  # planning touched nothing
    config_map = await cluster.client.ok("GET", f"{cluster.CONFIGMAPS}/{plan['sqlConfigMap']}")
    assert "CREATE TABLE customers" in config_map["data"]["sql"]
    assert "CREATE INDEX CONCURRENTLY" in config_map["data"]["sql"]
    assert config_map["data"]["hash"] == plan["hash"]
    assert config_map["metadata"]["ownerReferences"][0]["kind"] == "DatabaseMigration"

    await cluster.patch("shop", {"metadata": {"annotations": {APPROVE: "0000000000000000"}}})

    async def mismatch_reported() -> bool:
        return "names another plan" in (await cluster.status("shop")).get("message", "")

    await wait_for(mismatch_reported, what="the wrong hash to be reported")
    assert (await cluster.status("shop"))["phase"] == "AwaitingApproval"
    assert pg_database.tables() == set()

    await cluster.patch("shop", {"metadata": {"annotations": {APPROVE: plan["hash"]}}})
    done = await cluster.wait_phase("shop", "Succeeded")
    assert done["currentRevision"] == HEAD
    assert pg_database.versions() == {HEAD}
    reasons = await reasons_in_order(cluster, "shop")
    assert reasons == [
        "PlanStarted",
        "ApprovalPending",
        "ApprovalMismatch",
        "MigrationStarted",
        "MigrationSucceeded",
    ]


async def test_image_change_invalidates_the_plan(cluster: Cluster, pg_database: Database) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    await cluster.create(migration("shop", approval={"required": True}))
    first = (await awaiting(cluster, "shop"))["plan"]["hash"]
    cluster.kubelet.images["registry.example.com/shop/app:1.1"] = cluster.kubelet.images[
        "registry.example.com/shop/app:1.0"
    ]
    await cluster.patch("shop", {"spec": {"image": "registry.example.com/shop/app:1.1"}})
    second = await awaiting(cluster, "shop", not_hash=first)
    assert second["plan"]["hash"] != first
    assert second["plan"]["image"] == "registry.example.com/shop/app:1.1"
    # The old approval no longer matches anything: nothing runs.
    await cluster.patch("shop", {"metadata": {"annotations": {APPROVE: first}}})

    async def mismatch_reported() -> bool:
        return "names another plan" in (await cluster.status("shop")).get("message", "")

    await wait_for(mismatch_reported, what="the old approval to be refused")
    assert pg_database.tables() == set()


async def test_reject(cluster: Cluster, pg_database: Database) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    await cluster.create(migration("shop", approval={"required": True}))
    plan = (await awaiting(cluster, "shop"))["plan"]
    await cluster.patch("shop", {"metadata": {"annotations": {REJECT: plan["hash"]}}})
    status = await cluster.wait_phase("shop", "Failed")
    assert condition(status, "Stalled")["reason"] == "ApprovalRejected"
    assert pg_database.tables() == set()


async def test_dry_run_leaves_the_database_untouched(
    cluster: Cluster, pg_database: Database, tmp_path: Path
) -> None:
    assert run_runner(pg_database.url, "--revision", "0004_seed_data", tmp_path=tmp_path)
    schema = (
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' ORDER BY 1, 2"
    )
    before = pg_database.query(schema), pg_database.query("SELECT count(*) FROM customers")
    await cluster.create_secret("shop-db", pg_database.url)
    await cluster.create(migration("shop", dryRun=True))
    status = await cluster.wait_phase("shop", "Succeeded")
    assert condition(status, "Ready")["reason"] == "Planned"
    assert status["plan"]["fromRevision"] == "0004_seed_data"
    assert len(status["plan"]["revisions"]) == 6
    assert (
        pg_database.query(schema),
        pg_database.query("SELECT count(*) FROM customers"),
    ) == before
    assert pg_database.versions() == {"0004_seed_data"}
    assert "DryRunPlanned" in await reasons_in_order(cluster, "shop")


async def test_downgrade_refused_then_allowed_with_a_destructive_plan(
    cluster: Cluster, pg_database: Database, tmp_path: Path
) -> None:
    assert run_runner(pg_database.url, tmp_path=tmp_path).exit_code == 0
    await cluster.create_secret("shop-db", pg_database.url)
    body = migration("shop", revision="0008_categories", approval={"required": True})
    await cluster.create(body)
    refused = await cluster.wait_phase("shop", "Failed")
    assert condition(refused, "Stalled")["reason"] == "DowngradeRefused"
    await cluster.patch("shop", {"spec": {"allowDowngrade": True}})
    plan = (await awaiting(cluster, "shop"))["plan"]
    assert plan["direction"] == "downgrade" and plan["destructive"] is True
    assert plan["revisions"] == [HEAD]
    await cluster.patch("shop", {"metadata": {"annotations": {APPROVE: plan["hash"]}}})
    await cluster.wait_phase("shop", "Succeeded")
    assert pg_database.versions() == {"0008_categories"}


async def test_database_moved_after_approval_renders_a_new_plan(
    cluster: Cluster, pg_database: Database, tmp_path: Path
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    await cluster.create(migration("shop", approval={"required": True}))
    first = (await awaiting(cluster, "shop"))["plan"]
    # Someone migrates the database by hand while the plan waits.
    assert run_runner(pg_database.url, "--revision", "0003_orders", tmp_path=tmp_path)
    await cluster.patch("shop", {"metadata": {"annotations": {APPROVE: first["hash"]}}})
    second = await awaiting(cluster, "shop", not_hash=first["hash"])
    assert second["plan"]["fromRevision"] == "0003_orders"
    assert pg_database.versions() == {"0003_orders"}  # the outdated plan changed nothing
    assert "PlanOutdated" in await reasons_in_order(cluster, "shop")


async def test_an_unreadable_plan_log_is_reported_and_read_again(
    cluster: Cluster, pg_database: Database
) -> None:
    """Issue 15, rule 19: the plan pod's log (its SQL) cannot be read for a while."""
    refused = cluster.proxy.inject_fault(
        verb="get",
        plural="pods",
        subresource="log",
        status=500,
        message="Get https://127.0.0.1:10250/containerLogs: dial tcp: connect: connection refused",
        times=None,
    )
    await cluster.create_secret("shop-db", pg_database.url)
    await cluster.create(migration("shop", approval={"required": True}))

    async def reported() -> dict[str, Any] | None:
        status = await cluster.status("shop")
        ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
        return status if ready.get("reason") == "LogsUnreadable" else None

    status = await wait_for(reported, within=60, what="LogsUnreadable in shop's status")
    assert status["phase"] == "Planning" and "plan" not in status
    assert "connection refused" in status["message"] and "retrying" in status["message"]

    async def warned() -> list[str] | None:  # the Event follows the status it reports
        events = await cluster.events("shop")
        return [e["type"] for e in events if e["reason"] == "LogsUnreadable"] or None

    assert await wait_for(warned, within=30, what="the LogsUnreadable Event") == ["Warning"]

    refused.times = refused.hits  # the log server answers again
    await awaiting(cluster, "shop")
    assert await reasons_in_order(cluster, "shop") == [
        "PlanStarted",
        "LogsUnreadable",
        "ApprovalPending",
    ]
