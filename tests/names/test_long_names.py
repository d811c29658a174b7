"""Two migrations with 253-character names that share 252 of them, on the real control plane.

Issue 15, rules 11-13, judged by the real apiserver, the real garbage collector and a scrape:

- 11: the operator's Events on a migration whose name has 253 characters are posted, under
  names the apiserver's name validation accepts (checked by a dry run, see valid_event_name);
- 12: their metric series are apart, and deleting one leaves the other's;
- 13: identical plans, yet each migration owns its plan ConfigMap; after the first migration
  (and with it its ConfigMap) is gone, ``alembic-operator plan`` still shows the second's.

Both migrations only plan (approval required): no DDL runs, so one database serves both and
they plan concurrently.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.commands.helpers import OnCall
from tests.databases import Database
from tests.metrics.helpers import of_migration, samples, scrape
from tests.operator.harness import Cluster, migration, settled_event_reasons, wait_for

PREFIX = "shop-" + "x" * 247  # 252 characters: the names differ in their last one only
FIRST, SECOND = PREFIX + "a", PREFIX + "b"
INFO = "alembic_operator_migration_info"


async def awaiting_approval(cluster: Cluster, name: str) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        status = await cluster.status(name)
        return status if status.get("phase") == "AwaitingApproval" else None

    return dict(await wait_for(ready, within=90, what=f"{name[-8:]} to await approval"))


async def valid_event_name(cluster: Cluster, name: str) -> int:
    """The apiserver's verdict on ``name`` as an Event's name (a dry run: nothing is stored).

    The core/v1 Events endpoint the operator posts to skips the name check (legacy validation
    kept for old clients: it stores a 270-character name), events.k8s.io/v1 applies it (422
    beyond 253 characters); so the operator's names are put to the stricter one, in namespace
    ``default`` (in the test's own the name exists already: 409).
    """
    body = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name},
        "eventTime": "2025-01-01T00:00:00.000000Z",
        "regarding": {"kind": "DatabaseMigration", "namespace": "default", "name": FIRST},
        "reason": "NameCheck",
        "action": "Check",
        "type": "Normal",
        "reportingController": "alembic-operator.dev/tests",
        "reportingInstance": "tests",
    }
    path = "/apis/events.k8s.io/v1/namespaces/default/events"
    status, _ = await cluster.client.request("POST", path, body, params={"dryRun": "All"})
    return status


async def info_series(port: int, name: str) -> dict[str, float]:
    """The phase of each ``migration_info`` series labelled with exactly ``name``."""
    found = of_migration(samples(await scrape(port)), name, names=(INFO,))
    return {dict(lbls)["phase"]: value for (_, lbls), value in found.items()}


async def test_long_similar_names_keep_their_events_series_and_plans(
    cluster: Cluster, pg_database: Database, metrics_port: int, oncall: OnCall
) -> None:
    assert len(FIRST) == len(SECOND) == 253
    await cluster.create_secret("shop-db", pg_database.url)
    created = {
        name: await cluster.create(migration(name, approval={"required": True}))
        for name in (FIRST, SECOND)
    }
    statuses = dict(
        zip(
            (FIRST, SECOND),
            await asyncio.gather(*(awaiting_approval(cluster, n) for n in (FIRST, SECOND))),
            strict=True,
        )
    )

    # Rule 11: every Event on both was posted (PlanStarted, then ApprovalPending) under a name
    # the apiserver's object-name validation accepts.
    for name in (FIRST, SECOND):
        reasons = await settled_event_reasons(cluster, name, count=2)
        assert reasons == ["PlanStarted", "ApprovalPending"], reasons
        for event in await cluster.events(name):
            assert await valid_event_name(cluster, event["metadata"]["name"]) == 201

    # Rule 13: the same plan, two ConfigMaps, each owned by its own migration.
    plans = {name: statuses[name]["plan"] for name in (FIRST, SECOND)}
    assert plans[FIRST]["hash"] == plans[SECOND]["hash"]
    assert plans[FIRST]["sqlConfigMap"] != plans[SECOND]["sqlConfigMap"]
    for name in (FIRST, SECOND):
        config_map = await cluster.client.ok(
            "GET", f"{cluster.CONFIGMAPS}/{plans[name]['sqlConfigMap']}"
        )
        owners = [o["uid"] for o in config_map["metadata"]["ownerReferences"]]
        assert owners == [created[name]["metadata"]["uid"]]

    # Rule 12: one info series each, under its own whole name.
    async def both_exposed() -> bool:
        found = [await info_series(metrics_port, n) for n in (FIRST, SECOND)]
        return found == [{"AwaitingApproval": 1}] * 2

    await wait_for(both_exposed, what="an info series for each migration")

    await cluster.client.ok("DELETE", f"{cluster.DBM}/{FIRST}")

    async def first_forgotten() -> bool:
        return await info_series(metrics_port, FIRST) == {}

    await wait_for(first_forgotten, what="the deleted migration's series to go")
    assert await info_series(metrics_port, SECOND) == {"AwaitingApproval": 1}

    first_config_map = f"{cluster.CONFIGMAPS}/{plans[FIRST]['sqlConfigMap']}"

    async def collected() -> bool:
        status, _ = await cluster.client.request("GET", first_config_map)
        return status == 404

    await wait_for(collected, within=90, what="the first migration's ConfigMap to be collected")
    shown = await oncall("plan", SECOND)  # kubectl dbm runs the same command (tests/commands)
    assert shown.code == 0, shown
    assert plans[SECOND]["hash"] in shown.out
    assert "CREATE TABLE customers" in shown.out
