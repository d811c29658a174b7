"""/metrics of the real operator after real migrations: exact series, exactly once, no secrets.

The operator runs on the real control plane (tests/operator); the runner migrates the machine's
PostgreSQL. The metrics port is a free one (``ALEMBIC_OPERATOR_METRICS_PORT``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from alembic_operator.model.status import parse_time
from tests.metrics.conftest import PASSWORD
from tests.metrics.helpers import (
    Labels,
    Samples,
    check_metrics,
    labels,
    of_migration,
    samples,
    scrape,
    without_buckets,
)
from tests.operator.harness import (
    Cluster,
    Reconciles,
    add_image,
    broken_revision,
    job_name_for,
    migration,
    wait_for,
)
from tests.runner.harness import HEAD, copy_project

BROKEN_IMAGE = "registry.example.com/shop/app:broken"
MIGRATION_NAMES = (
    "alembic_operator_migrations_total",
    "alembic_operator_migration_failures_total",
    "alembic_operator_migration_duration_seconds_count",
    "alembic_operator_migration_duration_seconds_sum",
    "alembic_operator_migration_in_progress",
    "alembic_operator_migration_last_success_timestamp_seconds",
    "alembic_operator_migration_info",
    "alembic_operator_deployments_held",
)


def of(ns: str, name: str, **extra: str) -> Labels:
    return labels(namespace=ns, migration=name, **extra)


def expected_good(ns: str, status: dict[str, Any]) -> Samples:
    finished = parse_time(status["lastSucceeded"]["finishedAt"])
    assert finished is not None
    return {
        ("alembic_operator_migrations_total", of(ns, "good", result="succeeded")): 1,
        ("alembic_operator_migrations_total", of(ns, "good", result="failed")): 0,
        (
            "alembic_operator_migration_duration_seconds_count",
            of(ns, "good", result="succeeded"),
        ): 1,
        (
            "alembic_operator_migration_duration_seconds_sum",
            of(ns, "good", result="succeeded"),
        ): status["durationSeconds"],
        ("alembic_operator_migration_in_progress", of(ns, "good")): 0,
        ("alembic_operator_migration_last_success_timestamp_seconds", of(ns, "good")): (
            finished.timestamp()
        ),
        ("alembic_operator_migration_info", of(ns, "good", phase="Succeeded", revision=HEAD)): 1,
    }


def expected_broken(ns: str, status: dict[str, Any]) -> Samples:
    return {
        ("alembic_operator_migrations_total", of(ns, "broken", result="succeeded")): 0,
        ("alembic_operator_migrations_total", of(ns, "broken", result="failed")): 1,
        (
            "alembic_operator_migration_failures_total",
            of(ns, "broken", reason="MigrationFailed"),
        ): 1,
        ("alembic_operator_migration_duration_seconds_count", of(ns, "broken", result="failed")): 1,
        (
            "alembic_operator_migration_duration_seconds_sum",
            of(ns, "broken", result="failed"),
        ): status["durationSeconds"],
        ("alembic_operator_migration_in_progress", of(ns, "broken")): 0,
        ("alembic_operator_migration_info", of(ns, "broken", phase="Failed", revision=HEAD)): 1,
    }


def migration_series(found: Samples, name: str) -> Samples:
    return without_buckets(of_migration(found, name, names=MIGRATION_NAMES))


async def settled_to(port: int, want: dict[str, Samples]) -> str:
    """Scrape until each migration's series are exactly ``want[name]``; the last exposition."""
    last: dict[str, Samples] = {}

    async def reached() -> str | None:
        text = await scrape(port)
        found = samples(text)
        last.clear()
        last.update({name: migration_series(found, name) for name in want})
        return text if last == want else None

    try:
        return str(await wait_for(reached, what="the metrics to settle"))
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nwanted {want}\nfound {last}") from None


async def run_good_and_broken(
    cluster: Cluster, secret_url: str, tmp_path: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    project = copy_project(
        tmp_path, extra=broken_revision("0010_broken", HEAD, "SELECT * FROM no_such_table_0010")
    )
    add_image(cluster, BROKEN_IMAGE, project)
    await cluster.create_secret("shop-db", secret_url)
    await cluster.create(migration("good"))
    good = await cluster.wait_phase("good", "Succeeded")
    await cluster.create(migration("broken", image=BROKEN_IMAGE))
    broken = await cluster.wait_phase("broken", "Failed")
    return good, broken


async def test_outcomes_counted_once_and_restored_after_a_restart(
    cluster: Cluster,
    secret_url: str,
    metrics_port: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good, broken = await run_good_and_broken(cluster, secret_url, tmp_path)
    want = {"good": expected_good(cluster.ns, good), "broken": expected_broken(cluster.ns, broken)}
    text = await settled_to(metrics_port, want)

    found = samples(text)
    # The histograms: one observation each, in a bucket at or above its duration.
    for name, result, status in (("good", "succeeded", good), ("broken", "failed", broken)):
        buckets = {
            float(dict(lbls)["le"]): value
            for (metric, lbls), value in of_migration(found, name).items()
            if metric == "alembic_operator_migration_duration_seconds_bucket"
            and dict(lbls)["result"] == result
        }
        assert buckets[float("inf")] == 1
        assert all(v == (1 if le >= status["durationSeconds"] else 0) for le, v in buckets.items())
    # No info series of an earlier phase (Running) is left behind.
    infos = [k for k in found if k[0] == "alembic_operator_migration_info"]
    assert sorted(dict(lbls)["migration"] for _, lbls in infos) == ["broken", "good"]
    # The exposition is valid for promtool (naming, types, units).
    checked = check_metrics(text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # No credential anywhere.
    user = secret_url.split("//", 1)[1].split(":", 1)[0]
    for secret in (PASSWORD, quote(PASSWORD, safe=""), user, "postgresql", "127.0.0.1/"):
        assert secret not in text

    # A restart with the same resources: gauges come back from status, no counter moves.
    await cluster.stop_operator()
    reconciles = Reconciles(monkeypatch)
    await cluster.start_operator()
    restored = {
        name: {
            key: (0 if key[0] == "alembic_operator_migrations_total" else value)
            for key, value in series.items()
            if "duration" not in key[0] and "failures" not in key[0]
        }
        for name, series in want.items()
    }
    await settled_to(metrics_port, restored)
    # Make both reconcile once more (a no-op change), then nothing may have moved.
    before = {n: reconciles.count(n) for n in want}
    for name in want:
        await cluster.patch(name, {"metadata": {"annotations": {"example.com/touch": "1"}}})

    async def reconciled() -> bool:
        return all(reconciles.count(n) > before[n] for n in want)

    await wait_for(reconciled, what="both migrations to be reconciled again")
    found = samples(await scrape(metrics_port))
    assert {name: migration_series(found, name) for name in want} == restored


async def test_a_deleted_migrations_series_disappear(
    cluster: Cluster, secret_url: str, metrics_port: int, tmp_path: Path
) -> None:
    good, broken = await run_good_and_broken(cluster, secret_url, tmp_path)
    await settled_to(
        metrics_port,
        {"good": expected_good(cluster.ns, good), "broken": expected_broken(cluster.ns, broken)},
    )
    await cluster.client.ok("DELETE", f"{cluster.DBM}/broken")
    await settled_to(metrics_port, {"good": expected_good(cluster.ns, good), "broken": {}})
    found = samples(await scrape(metrics_port))
    assert not of_migration(found, "broken")  # histogram buckets included


async def test_a_running_migration_is_in_progress(
    cluster: Cluster, secret_url: str, metrics_port: int
) -> None:
    await cluster.create_secret("shop-db", secret_url)
    created = await cluster.create(migration("slow"))
    held = cluster.kubelet.hold(job_name_for(created), at="start")
    await cluster.wait_phase("slow", "Running")

    async def running() -> bool:
        found = samples(await scrape(metrics_port))
        return (
            found.get(("alembic_operator_migration_in_progress", of(cluster.ns, "slow"))) == 1
            and found.get(
                (
                    "alembic_operator_migration_info",
                    of(cluster.ns, "slow", phase="Running", revision=""),
                )
            )
            == 1
        )

    await wait_for(running, what="slow to be in progress")
    held.set()
    await cluster.wait_phase("slow", "Succeeded")

    async def done() -> bool:
        found = samples(await scrape(metrics_port))
        return (
            found.get(("alembic_operator_migration_in_progress", of(cluster.ns, "slow"))) == 0
            and (
                "alembic_operator_migration_info",
                of(cluster.ns, "slow", phase="Running", revision=""),
            )
            not in found
        )

    await wait_for(done, what="slow to be done")
