"""The on-call workflow against the real operator: plan, approve with the CLI (as the cluster
admin, not the operator's identity), succeed."""

from __future__ import annotations

from tests.commands.helpers import OnCall
from tests.databases import Database
from tests.operator.harness import Cluster, migration, wait_for
from tests.runner.harness import HEAD


async def test_plan_then_approve_with_the_cli(
    cluster: Cluster, oncall: OnCall, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    await cluster.create(migration("shop", approval={"required": True}))

    async def awaiting() -> bool:
        return (await cluster.status("shop")).get("phase") == "AwaitingApproval"

    await wait_for(awaiting, within=60, what="the plan to await approval")
    plan = await oncall("plan", "shop")
    assert plan.code == 0, plan
    digest = (await cluster.status("shop"))["plan"]["hash"]
    assert digest in plan.out
    assert "CREATE TABLE customers" in plan.out
    assert "0009_widen_product_name" in plan.out

    status = await oncall("status", "shop")
    assert "AwaitingApproval" in status.out

    approved = await oncall("approve", "shop")
    assert approved.code == 0, approved
    assert digest in approved.out
    done = await cluster.wait_phase("shop", "Succeeded")
    assert done["currentRevision"] == HEAD
    assert pg_database.versions() == {HEAD}

    again = await oncall("approve", "shop")
    assert again.code == 3  # nothing awaits approval any more
