"""The rollout gate end to end: the real operator, the real control plane, real PostgreSQL.

A held Deployment is ``spec.paused: true`` with ``alembic-operator.dev/held-by: shop``: the
real Deployment controller rolls out no template change of a paused Deployment, so its old
ReplicaSet keeps serving; the tests assert the pause, the annotation that explains it, and what
the controller did (ReplicaSets, a finished rollout after the release).

Without the admission webhook the hold comes from the operator's watch: a Deployment created or
changed while unpaused gets its new ReplicaSet from the controller 30-70 ms later, and the
operator's pause lands 0.1-0.5 s later, so part (or all) of that rollout happens before the hold
(see test_webhook.py for the admission path that closes that gap).
"""

from __future__ import annotations

from tests.databases import Database
from tests.gating.helpers import (
    controller_saw,
    create_deployment,
    deployment,
    deployment_events,
    gate_condition,
    get_deployment,
    held_by,
    image,
    is_free,
    is_held,
    migration_events,
    register_image,
    replica_sets,
    set_image,
    wait_free,
    wait_gate,
    wait_held,
    wait_rolled_out,
)
from tests.operator.harness import Cluster, job_name_for, migration, stays, wait_for


def gated(name: str = "shop", **spec: object) -> dict[str, object]:
    spec.setdefault("gate", {"deployments": ["web"]})
    return migration(name, **spec)


async def test_migration_first_holds_then_releases_for_the_new_image(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    register_image(cluster, "2.0")
    await create_deployment(cluster, deployment("web"))
    await create_deployment(cluster, deployment("other"))  # not gated: never touched
    created = await cluster.create(gated())
    running = cluster.kubelet.hold(job_name_for(created), at="start")

    held = await wait_held(cluster, "web")
    status = await wait_gate(cluster, {"held": True, "deployments": ["web"]})
    condition = gate_condition(status)
    assert condition is not None
    assert condition["status"] == "True"
    assert condition["reason"] == "AwaitingMigration"
    assert "web" in condition["message"]
    assert held["spec"]["paused"] is True

    running.set()
    await cluster.wait_phase("shop", "Succeeded")
    await wait_free(cluster, "web")
    status = await wait_gate(cluster, {"held": False, "deployments": []})
    condition = gate_condition(status)
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("False", "RolloutAllowed")
    assert is_free(await get_deployment(cluster, "other"))

    # The next release: the migration is updated first, the Deployment follows.
    second = cluster.kubelet.hold(job_name_for(created, generation=2, attempt=2), at="start")
    await cluster.patch("shop", {"spec": {"image": image("2.0")}})
    await wait_held(cluster, "web")
    await set_image(cluster, "web", "2.0")  # the new template arrives while held
    assert is_held(await controller_saw(cluster, "web"))
    # The real Deployment controller rolls out nothing while paused: the 1.0 pods keep serving.
    assert await stays(cluster, lambda: replica_sets(cluster, "web"), what="web's ReplicaSets") == {
        image("1.0"): 2
    }
    second.set()
    status = await cluster.wait_phase("shop", "Succeeded")
    assert status["lastSucceeded"]["image"] == image("2.0")
    await wait_free(cluster, "web")
    await wait_rolled_out(cluster, "web", "2.0")  # released: the rollout happens for real
    assert is_free(await get_deployment(cluster, "other"))

    async def four_events() -> list[str] | None:
        reasons = [e["reason"] for e in await deployment_events(cluster, "web")]
        return reasons if len(reasons) >= 4 else None

    assert await wait_for(four_events, what="hold and release events on web") == [
        "RolloutHeld",
        "RolloutReleased",
        "RolloutHeld",
        "RolloutReleased",
    ]
    assert await deployment_events(cluster, "other") == []


async def test_deployment_first_is_held_by_the_operator_reacting_to_it(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    register_image(cluster, "2.0")
    await create_deployment(cluster, deployment("web"))
    created = await cluster.create(gated())
    await cluster.wait_phase("shop", "Succeeded")
    await wait_free(cluster, "web")

    # The Deployment is updated first (e.g. `kubectl apply -f dir/` in file order).
    await set_image(cluster, "web", "2.0")
    await wait_held(cluster, "web")
    status = await wait_gate(
        cluster, {"held": True, "deployments": ["web"]}, reason="ImageMismatch"
    )
    condition = gate_condition(status)
    assert condition is not None
    assert "2.0" in condition["message"]
    # Real controllers: the Deployment controller acts on the template change at once (its 2.0
    # ReplicaSet exists 30-70 ms later) while the operator's pause lands later (a watch event,
    # a reconcile and a PATCH after the change), so part or all
    # of the rollout may have happened already; only the admission webhook prevents that (see
    # test_webhook.py). Once the controller has seen the pause, the new version grows no more.
    await controller_saw(cluster, "web")

    async def new_replicas() -> int:
        return (await replica_sets(cluster, "web")).get(image("2.0"), 0)

    await stays(cluster, new_replicas, what="the 2.0 ReplicaSet's size while held")

    second = cluster.kubelet.hold(job_name_for(created, generation=2, attempt=2), at="start")
    await cluster.patch("shop", {"spec": {"image": image("2.0")}})
    await cluster.wait_phase("shop", "Running")
    assert is_held(await get_deployment(cluster, "web"))
    second.set()
    await cluster.wait_phase("shop", "Succeeded")
    await wait_free(cluster, "web")
    await wait_rolled_out(cluster, "web", "2.0")


async def test_failure_keeps_deployments_held_with_warnings(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    register_image(cluster, "2.0")
    await create_deployment(cluster, deployment("web"))
    await cluster.create(gated(revision="0000deadbeef"))
    status = await cluster.wait_phase("shop", "Failed")
    assert status["conditions"]
    await wait_held(cluster, "web")

    async def failed_gate() -> dict[str, object] | None:
        condition = gate_condition(await cluster.status("shop"))
        return condition if condition and condition["reason"] == "RevisionNotFound" else None

    condition = await wait_for(failed_gate, what="the gate condition to report the failure")
    assert "failed (RevisionNotFound)" in str(condition["message"])

    # The new template arrives after the failure: still held, not rolled out.
    await set_image(cluster, "web", "2.0")
    await controller_saw(cluster, "web")

    async def pause_and_holder() -> tuple[object, object, object]:
        body = await get_deployment(cluster, "web")
        return body["spec"].get("paused"), held_by(body), await replica_sets(cluster, "web")

    assert await stays(cluster, pause_and_holder, what="the hold") == (
        True,
        "shop",
        {image("1.0"): 2},  # the real controller created no ReplicaSet for 2.0
    )

    async def warnings_on(events: object) -> list[dict[str, object]] | None:
        found = [e for e in await events() if e["type"] == "Warning"]  # type: ignore[operator]
        return found or None

    on_web = await wait_for(
        lambda: warnings_on(lambda: deployment_events(cluster, "web")),
        what="a Warning Event on the Deployment",
    )
    assert on_web[0]["reason"] == "RolloutHeld"
    assert "RevisionNotFound" in str(on_web[0]["message"])
    on_migration = await wait_for(
        lambda: warnings_on(lambda: migration_events(cluster, "shop")),
        what="Warning Events on the migration",
    )
    assert "DeploymentHeld" in [e["reason"] for e in on_migration]


async def test_a_user_paused_deployment_is_never_unpaused(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    await create_deployment(cluster, deployment("web", paused=True))
    await create_deployment(cluster, deployment("api"))
    created = await cluster.create(gated(gate={"deployments": ["web", "api"]}))
    running = cluster.kubelet.hold(job_name_for(created), at="start")
    await wait_held(cluster, "api")
    web = await get_deployment(cluster, "web")
    assert web["spec"]["paused"] is True
    assert held_by(web) is None  # not ours: no annotation added
    condition = gate_condition(await wait_gate(cluster, {"held": True, "deployments": ["api"]}))
    assert condition is not None
    assert "left alone: web" in condition["message"]

    running.set()
    await cluster.wait_phase("shop", "Succeeded")
    await wait_free(cluster, "api")

    async def web_state() -> tuple[object, object, object]:
        body = await get_deployment(cluster, "web")
        return body["spec"].get("paused"), held_by(body), await replica_sets(cluster, "web")

    # Created paused: the real Deployment controller never made it a ReplicaSet.
    assert await stays(cluster, web_state, what="the user's pause") == (True, None, {})
    assert await deployment_events(cluster, "web") == []


async def test_a_mismatching_image_stays_held_until_its_migration_succeeds(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    register_image(cluster, "2.0")
    created = await cluster.create(gated())
    await cluster.wait_phase("shop", "Succeeded")
    # Created with an image the migration has not run for (plus a sidecar of another repo).
    await create_deployment(cluster, deployment("web", tag="2.0", sidecar=True))
    await wait_held(cluster, "web")

    async def still_held() -> bool:
        return is_held(await get_deployment(cluster, "web"))

    assert await stays(cluster, still_held, what="the hold") is True
    await wait_gate(cluster, {"held": True, "deployments": ["web"]})

    second = cluster.kubelet.hold(job_name_for(created, generation=2, attempt=2), at="start")
    await cluster.patch("shop", {"spec": {"image": image("2.0")}})
    await cluster.wait_phase("shop", "Running")
    assert is_held(await get_deployment(cluster, "web"))
    second.set()
    await cluster.wait_phase("shop", "Succeeded")
    await wait_free(cluster, "web")


async def test_selector_matched_deployments_created_later_are_held(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    register_image(cluster, "2.0")
    selector = {"selector": {"matchLabels": {"app.kubernetes.io/part-of": "shop"}}}
    created = await cluster.create(gated(gate=selector))
    running = cluster.kubelet.hold(job_name_for(created), at="start")
    await cluster.wait_phase("shop", "Running")
    labels = {"app.kubernetes.io/part-of": "shop"}
    await create_deployment(cluster, deployment("worker", labels=labels))
    await create_deployment(cluster, deployment("unrelated", labels={"team": "other"}))
    await wait_held(cluster, "worker")
    assert is_free(await get_deployment(cluster, "unrelated"))

    running.set()
    await cluster.wait_phase("shop", "Succeeded")
    await wait_free(cluster, "worker")
    # After success: a matching Deployment on the succeeded image rolls out, another is held.
    await create_deployment(cluster, deployment("cron", labels=labels))
    await create_deployment(cluster, deployment("batch", tag="2.0", labels=labels))
    await wait_held(cluster, "batch")
    assert is_free(await get_deployment(cluster, "cron"))
    await wait_gate(cluster, {"held": True, "deployments": ["batch"]})


async def test_deleting_the_migration_releases_what_it_held(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    await create_deployment(cluster, deployment("web"))
    await create_deployment(cluster, deployment("manual", paused=True))
    created = await cluster.create(gated(gate={"deployments": ["web", "manual"]}))
    running = cluster.kubelet.hold(job_name_for(created), at="start")
    await wait_held(cluster, "web")
    await cluster.client.ok("DELETE", f"{cluster.DBM}/shop")
    await wait_free(cluster, "web")
    running.set()
    manual = await get_deployment(cluster, "manual")
    assert manual["spec"]["paused"] is True  # the person's pause stays

    async def released_event() -> bool:
        reasons = [e["reason"] for e in await deployment_events(cluster, "web")]
        return reasons[-1:] == ["RolloutReleased"]  # posted right after the release

    await wait_for(released_event, what="a RolloutReleased Event on web")


async def test_restart_keeps_the_hold_and_releases_later(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    await create_deployment(cluster, deployment("web"))
    created = await cluster.create(gated())
    running = cluster.kubelet.hold(job_name_for(created), at="start")
    await wait_held(cluster, "web")
    await cluster.stop_operator()
    running.set()  # the Job finishes while the operator is down

    async def job_done() -> bool:
        jobs = await cluster.jobs("shop")
        return bool(jobs) and any(
            c["type"] == "Complete" and c["status"] == "True"
            for c in jobs[0].get("status", {}).get("conditions", [])
        )

    await wait_for(job_done, what="the Job to complete with the operator down")
    assert is_held(await get_deployment(cluster, "web"))  # nobody released it meanwhile

    await cluster.start_operator()
    await cluster.wait_phase("shop", "Succeeded")
    await wait_free(cluster, "web")


async def test_a_migration_deleted_while_the_operator_is_down_is_released_at_start(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    await create_deployment(cluster, deployment("web"))
    created = await cluster.create(gated())
    running = cluster.kubelet.hold(job_name_for(created), at="start")
    await wait_held(cluster, "web")
    await cluster.stop_operator()
    await cluster.client.ok("DELETE", f"{cluster.DBM}/shop")
    running.set()
    assert is_held(await get_deployment(cluster, "web"))
    await cluster.start_operator()
    await wait_free(cluster, "web")
    listed = await cluster.client.ok("GET", cluster.DEPLOYMENTS)
    assert [held_by(d) for d in listed["items"]] == [None]
