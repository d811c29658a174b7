"""The operator under test: the real kopf operator on the real control plane, the test kubelet.

Each test gets its own namespace, a test kubelet for it, and the operator watching only that
namespace as the chart's ServiceAccount (RBAC rendered from the chart). Images map to local
folders: the application image is the example ``migrations/`` project, the operator image runs
``alembic-operator`` from this checkout. The database is real.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import kopf
from kopf.testing import KopfRunner

from alembic_operator.controller import handlers, webhooks
from alembic_operator.controller.reconcilers import Reconciler
from alembic_operator.core.jobs import job_name
from tests.cluster.client import Client
from tests.cluster.controlplane import ControlPlane
from tests.cluster.faults import FaultProxy
from tests.cluster.fixtures import APP_IMAGE, OPERATOR_IMAGE
from tests.cluster.kubelet import TestKubelet
from tests.cluster.processes import ImageSpec
from tests.runner.harness import revision_source

__all__ = ["APP_IMAGE", "OPERATOR_IMAGE"]
WATCHED = ("databasemigrations", "jobs", "pods", "deployments")


def fresh_registry(*modules: ModuleType) -> kopf.OperatorRegistry:
    """A registry holding only the handlers of ``modules``.

    kopf registers handlers into a process-wide default registry when a module is imported, so
    one test process would otherwise mix every kopf module any test imported (and a module
    imported once never registers again). Reloading the module into a new registry isolates it.
    """
    registry = kopf.OperatorRegistry()
    previous = kopf.get_default_registry()
    kopf.set_default_registry(registry)
    try:
        for module in modules:
            importlib.reload(module)
    finally:
        kopf.set_default_registry(previous)
    return registry


def fast_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.peering.standalone = True
    settings.scanning.disabled = True
    settings.networking.error_backoffs = [0.1, 0.2]
    settings.execution.default_backoff = 0.2
    settings.persistence.consistency_timeout = 1.0
    settings.queueing.exit_timeout = 0.5
    return settings


def migration(name: str, *, secret: str = "shop-db", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "alembic-operator.dev/v1alpha1",
        "kind": "DatabaseMigration",
        "metadata": {"name": name},
        "spec": {
            "image": APP_IMAGE,
            "database": {"urlSecretRef": {"name": secret, "key": "url"}, "lockTimeoutSeconds": 10},
            "activeDeadlineSeconds": 120,
            **spec,
        },
    }


@dataclass
class Cluster:
    """One test's view of the real cluster: its namespace, kubelet, admin client and operator."""

    control_plane: ControlPlane
    ns: str
    kubelet: TestKubelet
    client: Client
    kubeconfig: Path  # the operator's: the chart's ServiceAccount, this namespace, via proxy
    proxy: FaultProxy  # between the operator and the apiserver: faults, request counts
    operator: KopfRunner | None = field(default=None)
    reconciler: Reconciler | None = field(default=None)  # the running operator's

    # --- paths in this test's namespace -----------------------------------------------------

    @property
    def DBM(self) -> str:  # noqa: N802 (reads like the constant it replaced)
        return f"/apis/alembic-operator.dev/v1alpha1/namespaces/{self.ns}/databasemigrations"

    @property
    def JOBS(self) -> str:  # noqa: N802
        return f"/apis/batch/v1/namespaces/{self.ns}/jobs"

    @property
    def PODS(self) -> str:  # noqa: N802
        return f"/api/v1/namespaces/{self.ns}/pods"

    @property
    def SECRETS(self) -> str:  # noqa: N802
        return f"/api/v1/namespaces/{self.ns}/secrets"

    @property
    def EVENTS(self) -> str:  # noqa: N802
        return f"/api/v1/namespaces/{self.ns}/events"

    @property
    def CONFIGMAPS(self) -> str:  # noqa: N802
        return f"/api/v1/namespaces/{self.ns}/configmaps"

    @property
    def DEPLOYMENTS(self) -> str:  # noqa: N802
        return f"/apis/apps/v1/namespaces/{self.ns}/deployments"

    # --- the operator ----------------------------------------------------------------------

    async def start_operator(self) -> None:
        """Start the operator watching this test's namespace; wait until it lists what it watches.

        The fault proxy sees kopf's requests, so "ready" is the first list of each watched
        resource after this start (objects created from then on reach it by its watches).
        """
        assert self.operator is None
        listed_before = {p: self._lists(p) for p in WATCHED}
        args = ["run", "--namespace", self.ns, "--standalone"]
        registry = fresh_registry(webhooks, handlers)
        cluster = self

        class Observed(Reconciler):
            """The operator's reconciler, kept where :func:`stays` sees whether it is idle."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                cluster.reconciler = self

        # The startup handler builds its reconciler from this module global (reloaded above).
        handlers.Reconciler = Observed  # type: ignore[misc]
        self.operator = KopfRunner(args, registry=registry, settings=fast_settings(), timeout=60)
        self.operator.__enter__()

        async def ready() -> bool:
            return all(self._lists(p) > listed_before[p] for p in WATCHED)

        await wait_for(ready, what="the operator to list the resources it watches")

    def _lists(self, plural: str) -> int:
        return self.proxy.count(verb="list", plural=plural)

    def reconciler_busy(self, *, within: float) -> bool:
        """The operator has work queued or running, or a timer due within ``within`` seconds."""
        assert self.reconciler is not None, "the operator has not started its reconciler"
        return self.reconciler.queue.busy(within=within)

    def reconciler_passes(self) -> int:
        assert self.reconciler is not None, "the operator has not started its reconciler"
        return self.reconciler.queue.passes

    async def stop_operator(self) -> str:
        runner, self.operator = self.operator, None
        assert runner is not None
        await asyncio.to_thread(runner.__exit__, None, None, None)
        assert runner.exit_code == 0, runner.output
        return str(runner.output)

    # --- objects ---------------------------------------------------------------------------

    async def create_secret(self, name: str, url: str, *, key: str = "url") -> None:
        data = {key: base64.b64encode(url.encode()).decode()}
        await self.client.ok("POST", self.SECRETS, {"metadata": {"name": name}, "data": data})

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.client.ok("POST", self.DBM, body)

    async def get(self, name: str) -> dict[str, Any]:
        return await self.client.ok("GET", f"{self.DBM}/{name}")

    async def patch(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.client.ok(
            "PATCH", f"{self.DBM}/{name}", body, content_type="application/merge-patch+json"
        )

    async def status(self, name: str) -> dict[str, Any]:
        return dict((await self.get(name)).get("status") or {})

    async def jobs(self, name: str) -> list[dict[str, Any]]:
        listed = await self.client.ok(
            "GET", self.JOBS, params={"labelSelector": f"alembic-operator.dev/migration={name}"}
        )
        return list(listed["items"])

    async def events(self, name: str) -> list[dict[str, Any]]:
        listed = await self.client.ok(
            "GET", self.EVENTS, params={"fieldSelector": f"involvedObject.name={name}"}
        )
        return [
            e for e in listed["items"] if e.get("source", {}).get("component") == "alembic-operator"
        ]

    async def event_reasons(self, name: str) -> list[str]:
        events = sorted(
            await self.events(name), key=lambda e: int(e["metadata"]["resourceVersion"])
        )
        return [e["reason"] for e in events]

    async def wait_phase(self, name: str, phase: str, *, within: float = 60) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            status = await self.status(name)
            return status if status.get("phase") == phase else None

        return await wait_for(reached, within=within, what=f"{name} to reach {phase}")


class Reconciles:
    """Counts the operator's finished reconciles per migration name.

    The operator runs in this process (``KopfRunner``), so a wrapped ``Reconciler.reconcile``
    sees each pass; most passes read nothing from the API (the watch feeds the caches), so
    request counts cannot tell them.
    """

    def __init__(self, monkeypatch: Any) -> None:
        self._done: list[str] = []
        original = Reconciler.reconcile

        async def counted(reconciler: Reconciler, namespace: str, name: str) -> float | None:
            try:
                return await original(reconciler, namespace, name)
            finally:
                self._done.append(name)

        monkeypatch.setattr(Reconciler, "reconcile", counted)

    def count(self, name: str) -> int:
        return self._done.count(name)


async def wait_for(
    probe: Callable[[], Awaitable[Any]], *, within: float = 30, what: str = "condition"
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(0.05)


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions", []) if c["type"] == kind)


async def settled_event_reasons(cluster: Cluster, name: str, *, count: int) -> list[str]:
    """The operator's Event reasons on ``name`` once at least ``count`` have been posted."""

    async def enough() -> list[str] | None:
        reasons = await cluster.event_reasons(name)
        return reasons if len(reasons) >= count else None

    return list(await wait_for(enough, what=f"{count} events on {name}"))


# --- helpers for the failure, Secret and change tests -----------------------------------------


def add_image(cluster: Cluster, reference: str, root: Path) -> str:
    """Map another image to a local folder (the kubelet reads ``images`` when a pod starts)."""
    cluster.kubelet.images[reference] = ImageSpec(root=root)
    return reference


def job_name_for(created: dict[str, Any], *, generation: int = 1, attempt: int = 1) -> str:
    """The deterministic name the operator gives the Job of ``created`` (a migration body)."""
    meta = created["metadata"]
    return job_name(meta["name"], uid=meta["uid"], generation=generation, attempt=attempt)


async def pods(cluster: Cluster, job: str) -> list[dict[str, Any]]:
    """The pods of one Job, oldest first."""
    listed = await cluster.client.ok(
        "GET", cluster.PODS, params={"labelSelector": f"job-name={job}"}
    )
    return sorted(listed["items"], key=lambda p: p["metadata"]["creationTimestamp"])


async def migration_pods(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    """Every pod of every Job of the migration ``name``."""
    listed = await cluster.client.ok(
        "GET", cluster.PODS, params={"labelSelector": f"alembic-operator.dev/migration={name}"}
    )
    return list(listed["items"])


async def delete_job(cluster: Cluster, job: str, *, propagation: str = "Background") -> None:
    """Delete a Job as a user would (``kubectl delete job --cascade=background``)."""
    await cluster.client.ok(
        "DELETE",
        f"{cluster.JOBS}/{job}",
        {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation},
    )


async def job_names(cluster: Cluster, name: str) -> list[str]:
    return sorted(j["metadata"]["name"] for j in await cluster.jobs(name))


IDLE_HORIZON_SECONDS = 10.0  # a timer due later than this does not keep stays() waiting
QUIET_SECONDS = 1.0  # idle for this long: the watch events of the test's last change are in


async def stays(
    cluster: Cluster,
    probe: Callable[[], Awaitable[Any]],
    *,
    what: str = "state",
    passes: int = 0,
    horizon: float = IDLE_HORIZON_SECONDS,
    within: float = 90,
) -> Any:
    """``probe``'s answer once the operator has settled, and still after it settled again.

    "Nothing happens" is tied to the reconciler, not to a fixed window. Settled: its queue has
    nothing queued or running and no timer due within ``horizon`` seconds (a retry or resync due
    sooner is waited for), for ``QUIET_SECONDS`` in a row. The answer is read once the operator
    has settled (what the test's last change causes has happened: a status and the Events after
    it), then until it has settled again after at least ``passes`` more reconcile passes
    (evidence that it looked again); any change in between fails.
    """
    await _settle(cluster, horizon=horizon, deadline=time.monotonic() + within, what=what)
    first = await probe()
    passes_before = cluster.reconciler_passes()

    async def unchanged() -> None:
        now = await probe()
        assert now == first, f"{what} changed: {first!r} -> {now!r}"

    await _settle(
        cluster,
        horizon=horizon,
        deadline=time.monotonic() + within,
        what=what,
        each=unchanged,
        passes_since=(passes_before, passes),
    )
    return first


async def _settle(
    cluster: Cluster,
    *,
    horizon: float,
    deadline: float,
    what: str,
    each: Callable[[], Awaitable[None]] | None = None,
    passes_since: tuple[int, int] = (0, 0),
) -> None:
    """Wait until the reconciler is idle (see :func:`stays`), calling ``each`` every 0.1 s."""
    idle_since: float | None = None
    while True:
        await asyncio.sleep(0.1)
        if each is not None:
            await each()
        moment = time.monotonic()
        before, wanted = passes_since
        if cluster.reconciler_busy(within=horizon) or cluster.reconciler_passes() - before < wanted:
            idle_since = None
        else:
            idle_since = moment if idle_since is None else idle_since
            if moment - idle_since >= QUIET_SECONDS:
                return
        if moment > deadline:
            raise AssertionError(f"the operator did not settle ({what})")


def broken_revision(revision: str, down: str, sql: str) -> dict[str, str]:
    """``copy_project(extra=...)`` entries for one revision whose upgrade runs bad ``sql``."""
    return {f"{revision}.py": revision_source(revision, down, f"    op.execute({sql!r})")}


async def reasons_in_order(cluster: Cluster, name: str) -> list[str]:
    """The operator's Event reasons on ``name`` in posting order, once no more are arriving.

    Events are posted right after the status write they report, so a test that has just seen a
    status must let them land: read until two reads 0.2 s apart agree (at most 10 s).
    """
    deadline = time.monotonic() + 10
    previous = await cluster.event_reasons(name)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        current = await cluster.event_reasons(name)
        if current == previous:
            return current
        previous = current
    return previous
