"""Approval pins what was approved (issue 15, item 2; DESIGN §5).

The plan Job's pod reports the image it ran (``containerStatuses[].imageID``; the test kubelet
reports a digest of the image's folder). The apply Job runs that digest, and the runner refuses
(``PlanOutdated``) unless what it is about to apply is the approved plan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.cluster.fixtures import APP_IMAGE
from tests.databases import Database
from tests.operator.harness import Cluster, add_image, condition, migration, wait_for
from tests.runner.harness import ALL_REVISIONS, HEAD, copy_project, revision_source

APPROVE = "alembic-operator.dev/approve"
DROP = revision_source("0010_drop", HEAD, "    op.drop_table('categories')")


async def awaiting(cluster: Cluster, name: str) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        status = await cluster.status(name)
        return status if status.get("phase") == "AwaitingApproval" else None

    return dict(await wait_for(ready, within=60, what=f"{name} to await approval"))


async def apply_job(cluster: Cluster, name: str) -> dict[str, Any]:
    jobs = [j for j in await cluster.jobs(name) if "-plan-" not in j["metadata"]["name"]]
    [job] = jobs
    return job


async def test_a_tag_pushed_again_after_approval_runs_the_approved_image(
    cluster: Cluster, pg_database: Database, tmp_path: Path
) -> None:
    add_image(cluster, APP_IMAGE, copy_project(tmp_path / "1.0"))
    await cluster.create_secret("shop-db", pg_database.url)
    await cluster.create(migration("shop", approval={"required": True}))
    plan = (await awaiting(cluster, "shop"))["plan"]
    repository = APP_IMAGE.rsplit(":", 1)[0]
    assert plan["imageID"].startswith(f"{repository}@sha256:")
    assert len(plan["revisions"]) == ALL_REVISIONS and len(plan["sqlSha256"]) == 64
    # The same tag is pushed again with one more revision (dropping a table).
    add_image(
        cluster, APP_IMAGE, copy_project(tmp_path / "1.0-again", extra={"0010_drop.py": DROP})
    )
    await cluster.patch("shop", {"metadata": {"annotations": {APPROVE: plan["hash"]}}})
    status = await cluster.wait_phase("shop", "Succeeded")
    job = await apply_job(cluster, "shop")
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == plan["imageID"]  # the digest the plan ran, not the tag
    assert status["currentRevision"] == HEAD
    assert pg_database.versions() == {HEAD}
    assert "categories" in pg_database.tables()  # 0010_drop never ran
    assert status["lastSucceeded"]["image"] == APP_IMAGE  # the gate compares the tag


async def test_other_revisions_behind_the_approved_reference_are_refused(
    cluster: Cluster, pg_database: Database, tmp_path: Path
) -> None:
    project = copy_project(tmp_path / "1.0")
    add_image(cluster, APP_IMAGE, project)
    await cluster.create_secret("shop-db", pg_database.url)
    await cluster.create(migration("shop", approval={"required": True}))
    plan = (await awaiting(cluster, "shop"))["plan"]
    # What the approved reference holds changes (e.g. no digest was known and the tag moved).
    (project / "versions" / "0010_drop.py").write_text(DROP)
    await cluster.patch("shop", {"metadata": {"annotations": {APPROVE: plan["hash"]}}})
    status = await cluster.wait_phase("shop", "Failed")
    assert condition(status, "Stalled")["reason"] == "PlanOutdated"
    assert "not in the approved plan: 0010_drop" in status["message"]
    assert pg_database.tables() == set()  # nothing ran: no DDL, not even alembic_version
    assert status["phase"] == "Failed" and not status.get("appliedRevisions")
