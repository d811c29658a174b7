"""The pod gate's controller side: which pods carry the scheduling gate, and taking it off.

The webhook (:mod:`alembic_operator.controller.webhooks`) gives new pods of a gated workload
the scheduling gate ``alembic-operator.dev/migration``; the scheduler leaves them Pending. This
module keeps the gated pods of each namespace (fed by the pod watch, ``handlers.pod_gate_event``)
and removes the gate (a ``pods`` patch) once :func:`~alembic_operator.core.admission.may_ungate`
allows it: after the migration's success was written to its status, never on failure.

A check of a namespace runs after every change that can allow a pod: a gated pod seen, a
migration's status written or seen (:class:`~alembic_operator.controller.indexes.GateIndex`),
a migration deleted. Checks coalesce per namespace like reconciles. A pod seen checks that pod
only; a migration's change checks every gated pod of its namespace: at 50 gated pod creations a
second, a pass over all of them per pod event cost the operator's event loop O(n²) and the webhook
seconds of latency (bench/admission.py). A holder recorded on a pod
that is not in the index is reconciled (``on_unknown``): if it no longer exists, that reconcile
calls :meth:`PodGates.migration_gone`, which lets its pods go.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from alembic_operator.controller.indexes import GateIndex
from alembic_operator.controller.kubeapi import KubeApi
from alembic_operator.controller.observers import parse_workload_pod
from alembic_operator.core.admission import POD_GATE, may_ungate
from alembic_operator.core.gates import HELD_BY_ANNOTATION
from alembic_operator.errors import NotFound, OperatorError
from alembic_operator.model.observations import WorkloadPod

log = logging.getLogger("alembic_operator.podgates")
RETRY_SECONDS = 2.0


class PodGates:
    """namespace -> pod name -> the gated pod; removes gates as the rule allows."""

    def __init__(
        self, api: KubeApi, index: GateIndex, *, on_unknown: Callable[[str, str], None]
    ) -> None:
        self._api = api
        self._index = index
        self._on_unknown = on_unknown
        self._pods: dict[str, dict[str, WorkloadPod]] = {}
        self._gone: dict[str, set[str]] = {}  # namespace -> migrations confirmed deleted
        self._dirty: set[str] = set()  # namespaces to check whole
        self._dirty_pods: dict[str, set[str]] = {}  # namespace -> pods to check, when not whole
        self._workers: dict[str, asyncio.Task[None]] = {}

    def gated(self, namespace: str) -> list[WorkloadPod]:
        return list(self._pods.get(namespace, {}).values())

    # --- feeding ---------------------------------------------------------------------------

    def pod_event(self, kind: str | None, body: Mapping[str, Any]) -> None:
        pod = parse_workload_pod(body)
        if kind == "DELETED" or not pod.gated:
            pods = self._pods.get(pod.namespace)
            if pods is not None and pods.pop(pod.name, None) is not None and not pods:
                del self._pods[pod.namespace]
            return
        self._pods.setdefault(pod.namespace, {})[pod.name] = pod
        self.check(pod.namespace, pod=pod.name)

    def migration_gone(self, namespace: str, name: str) -> None:
        """A reconcile found ``name`` deleted: pods it alone held may go (unless they name it)."""
        self._gone.setdefault(namespace, set()).add(name)
        self.check(namespace)

    def migration_seen(self, namespace: str, name: str) -> None:
        gone = self._gone.get(namespace)
        if gone is not None:
            gone.discard(name)
        self.check(namespace)

    # --- checking --------------------------------------------------------------------------

    def check(self, namespace: str, *, pod: str | None = None) -> None:
        """Check ``pod`` of ``namespace`` soon, or (``None``) every gated pod of it."""
        if namespace not in self._pods:
            return
        if pod is None:
            self._dirty.add(namespace)
        else:
            self._dirty_pods.setdefault(namespace, set()).add(pod)
        if namespace not in self._workers:
            task = asyncio.get_running_loop().create_task(
                self._work(namespace), name=f"pod gates {namespace}"
            )
            self._workers[namespace] = task

    async def _work(self, namespace: str) -> None:
        try:
            while namespace in self._dirty or self._dirty_pods.get(namespace):
                names = self._dirty_pods.pop(namespace, set())
                whole = namespace in self._dirty
                self._dirty.discard(namespace)
                if not await self._check(namespace, None if whole else names):
                    await asyncio.sleep(RETRY_SECONDS)
                    self._dirty.add(namespace)
        finally:
            self._workers.pop(namespace, None)

    async def _check(self, namespace: str, names: set[str] | None) -> bool:
        """One pass over the namespace's gated pods (or those ``names``); ``False`` when an API
        call failed."""
        migrations = self._index.migrations(namespace)
        gone = self._gone.get(namespace, set())
        unknown: set[str] = set()
        ok = True
        pods = self._pods.get(namespace, {})
        chosen = pods.values() if names is None else [pods[n] for n in names if n in pods]
        for pod in list(chosen):
            unknown.update(n for n in pod.held_by if n not in migrations and n not in gone)
            if may_ungate(pod, migrations, held_by=pod.held_by, gone=gone):
                ok = await self._ungate(pod) and ok
        for name in sorted(unknown):
            self._on_unknown(namespace, name)
        return ok

    async def _ungate(self, pod: WorkloadPod) -> bool:
        try:
            await self._api.ungate_pod(
                pod.namespace, pod.name, gate=POD_GATE, annotation=HELD_BY_ANNOTATION
            )
        except NotFound:
            pass
        except OperatorError as exc:
            log.warning("could not ungate pod %s/%s (retrying): %s", pod.namespace, pod.name, exc)
            return False
        log.info(
            "removed the scheduling gate of pod %s/%s (held by %s)",
            pod.namespace,
            pod.name,
            ",".join(pod.held_by) or "its label",
        )
        self._pods.get(pod.namespace, {}).pop(pod.name, None)
        return True

    async def close(self) -> None:
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
