"""The reconcile loop: parse -> observe -> decide -> execute, one migration at a time.

A work queue in front of it (:mod:`~alembic_operator.controller.workqueue`): triggers for the
same migration coalesce (a burst of watch events costs one reconcile, plus one more if something
arrived meanwhile), one migration never reconciles concurrently with itself, and the core's
``requeue_after`` and API failures schedule the next look. Watch events of Jobs and Pods find
their migration through the uid label; those of Deployments through
:class:`~alembic_operator.controller.indexes.GateIndex` (the migrations gating them, a view of
``api.migrations``) and their held-by annotation. The caches follow the one policy
(:mod:`alembic_operator.controller.caches`): :meth:`Reconciler.resync` re-lists the namespaces
whose migrations nothing confirmed within the period, so a deletion the watch missed is released
like any other. Right after ``decide`` the rollout gate
(:func:`~alembic_operator.core.gates.apply_gate`) adds its holds and releases. A reconcile that
finds its migration gone releases the Deployments it held (deletion needs no finalizer). Pods
of gated workloads wait in :class:`~alembic_operator.controller.podgates.PodGates`, checked
after each status written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from alembic_operator.controller.caches import Store, key_of, uid_of, version_of
from alembic_operator.controller.executors import execute, execute_releases
from alembic_operator.controller.indexes import GateIndex, parse_or_none
from alembic_operator.controller.kubeapi import KubeApi
from alembic_operator.controller.observers import observe, parse_deployment
from alembic_operator.controller.podgates import PodGates
from alembic_operator.controller.workqueue import Key, Scheduler, Stale, WorkQueue, retry_stale
from alembic_operator.core.decisions import decide, observation_plan, reject_invalid
from alembic_operator.core.gates import apply_gate, deployment_query, release_deleted
from alembic_operator.errors import Conflict, OperatorError
from alembic_operator.model.actions import Decision
from alembic_operator.model.migrations import Migration, MigrationRef, parse_migration
from alembic_operator.model.spec import InvalidMigration
from alembic_operator.model.status import MigrationStatus, parse_status

log = logging.getLogger("alembic_operator.controller")

CONFLICT_RETRIES = 5


def utc_now() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    """Owns the per-migration work queue; everything it does goes through ``api``."""

    def __init__(
        self,
        api: KubeApi,
        *,
        runner_image: str,
        clock: Callable[[], datetime] = utc_now,
        scheduler: Scheduler | None = None,
        leading: bool = True,
    ) -> None:
        self._api = api
        self._runner_image = runner_image
        self._clock = clock
        # Only the leader acts (controller/leadership.py); a standby's queue remembers what it
        # was asked to reconcile and does it all once it leads.
        self.queue = WorkQueue(
            lambda key: self.reconcile(*key), scheduler=scheduler, leading=leading
        )
        self._by_uid: dict[str, Key] = {}
        self.index = GateIndex(api.migrations)
        # Pods of gated workloads wait on the same index; unknown holders are reconciled.
        self.pods = PodGates(api, self.index, on_unknown=lambda ns, name: self.trigger((ns, name)))
        # What of each Deployment the gate cares about, as its last event showed it.
        self._deployments: Store[tuple[Any, ...]] = Store(api.policy)

    # --- triggers --------------------------------------------------------------------------

    def migration_seen(self, body: Mapping[str, Any]) -> None:
        """A migration's watch event (``api.migrations`` holds it): gated pods may move."""
        self.pods.migration_seen(*key_of(body))

    def migration_deleted(self, key: Key) -> None:
        """It is gone (``api.migrations`` dropped it): the reconcile releases what it held."""
        self.trigger(key)

    def deployment_event(self, kind: str, body: Mapping[str, Any]) -> None:
        """Reconcile the migrations gating or holding a Deployment that changed.

        Only changes the gate cares about count (generation, labels, holders, paused, images):
        status updates during a rollout trigger nothing. A holder that is not a known migration
        is reconciled too: if it no longer exists, that reconcile releases the Deployment (how
        holds of migrations deleted while the operator was down end, at start-up).
        """
        namespace = str((body.get("metadata") or {}).get("namespace"))
        deployment = parse_deployment(body)
        key = (namespace, deployment.name)
        if kind == "DELETED":
            self._deployments.gone(key, uid=uid_of(body))
            targets = list(deployment.held_by)
        else:
            seen = (
                deployment.generation,
                tuple(sorted(deployment.labels.items())),
                deployment.held_by,
                deployment.paused,
                deployment.images,
            )
            unchanged = self._deployments.get(key) == seen  # expires: one look a period at most
            self._deployments.seen(key, seen, uid=deployment.uid, version=version_of(body))
            if unchanged:
                return
            gating = self.index.gating(namespace, deployment.name, deployment.labels)
            targets = [m.ref.name for m in gating] + list(deployment.held_by)
        for name in dict.fromkeys(targets):
            self.trigger((namespace, name))

    def remember(self, uid: str, key: Key) -> None:
        self._by_uid[uid] = key

    def forget(self, uid: str, key: Key) -> None:
        self._by_uid.pop(uid, None)
        self.queue.cancel_timer(key)

    def trigger_uid(self, uid: str | None) -> None:
        key = self._by_uid.get(uid or "")
        if key is not None:
            self.trigger(key)

    def trigger(self, key: Key, *, delay: float = 0.0) -> None:
        self.queue.trigger(key, delay=delay)

    @property
    def leading(self) -> bool:
        return self.queue.leading

    def activate(self) -> None:
        """This replica leads: reconcile every migration it knows (the last leader's work)."""
        self.queue.resume(self._by_uid.values())

    def deactivate(self) -> None:
        """This replica no longer leads: stop at once (in-flight reconciles are cancelled)."""
        self.queue.pause()

    async def close(self) -> None:
        await self.pods.close()
        await self.queue.close()

    # --- work ------------------------------------------------------------------------------

    async def reconcile(self, namespace: str, name: str) -> float | None:
        """One pass; returns when to look again (seconds) or ``None``."""
        return await retry_stale(
            lambda: self._reconcile_once(namespace, name),
            tries=CONFLICT_RETRIES,
            what=f"{namespace}/{name}",
        )

    async def _reconcile_once(self, namespace: str, name: str) -> float | None:
        body = await self._api.get_migration(namespace, name)
        if body is None:
            await self._release_deleted(namespace, name)
            return None
        meta = body.get("metadata") or {}
        ref = MigrationRef(
            namespace=namespace,
            name=name,
            uid=str(meta.get("uid", "")),
            generation=int(meta.get("generation") or 1),
        )
        self.remember(ref.uid, (namespace, name))
        decision, migration, previous = await self._decide(body, ref)
        try:
            done = await execute(
                self._api,
                decision,
                ref=ref,
                previous=previous,
                resource_version=str(meta.get("resourceVersion", "")),
            )
        except Conflict as exc:
            raise Stale from exc
        if migration is not None and done.version is not None:
            # api.migrations holds the status just written (the webhook reads it at once).
            self.pods.check(namespace)  # pods may start once the status allows them
        if isinstance(done.failure, Conflict):  # a Deployment changed meanwhile: look again
            raise Stale from done.failure
        if done.failure is not None:
            raise done.failure
        return decision.requeue_after

    async def _decide(
        self, body: dict[str, object], ref: MigrationRef
    ) -> tuple[Decision, Migration | None, MigrationStatus]:
        """The decision, the typed migration (``None`` when invalid) and its stored status."""
        try:
            migration = self._parse(body, ref)
        except InvalidMigration as exc:
            status = parse_status(body.get("status") or {})  # type: ignore[arg-type]
            return reject_invalid(ref, status, message=str(exc), now=self._clock()), None, status
        plan = replace(observation_plan(migration), deployments=deployment_query(migration))
        observed = await observe(self._api, migration, plan)
        now = self._clock()
        decision = decide(migration, observed, now=now, runner_image=self._runner_image)
        gated = apply_gate(migration, decision, observed.deployments, now=now)
        return gated, migration, migration.status

    def _parse(self, body: Mapping[str, Any], ref: MigrationRef) -> Migration:
        """The typed migration; the one the store memoised when it holds this very version."""
        key = (ref.namespace, ref.name)
        held = self._api.migrations.entry(key)
        version = version_of(body)
        if held is not None and version and (held.uid, held.version) == (ref.uid, version):
            parsed = self._api.migrations.derived(key, parse_or_none)
            if parsed is not None:
                return parsed
        return parse_migration(body)

    async def resync(self) -> None:
        """Forever: re-list the namespaces holding a migration nothing confirmed in the period
        (the whole cluster in one LIST when the operator watches every namespace).

        What the LIST no longer has (a deletion the watch missed) is reconciled: the reconcile
        finds it gone and releases what it held. Runs on every replica (standbys serve the
        webhook from the same index).
        """
        policy = self._api.policy
        while True:
            await asyncio.sleep(policy.resync_seconds / 4)
            stale = self._api.migrations.stale_namespaces()
            # Watching every namespace: one LIST of the cluster instead of one per namespace.
            scopes: list[str | None] = [None] if stale and policy.clusterwide else [*stale]
            for scope in scopes:
                try:
                    gone = await self._api.resync_migrations(scope)
                except OperatorError as exc:
                    log.warning("resync of the migrations in %s failed: %s", scope or "all", exc)
                    continue
                except Exception:  # a bug must not end the resync for the process's lifetime
                    log.exception("resync of the migrations in %s failed", scope or "all")
                    continue
                for namespace, name in gone:
                    log.info("%s/%s is gone (its deletion was missed): releasing", namespace, name)
                    self.migration_deleted((namespace, name))

    async def _release_deleted(self, namespace: str, name: str) -> None:
        """The migration is gone: release the Deployments and pods whose held-by names it."""
        self.pods.migration_gone(namespace, name)
        listed = [parse_deployment(raw) for raw in await self._api.list_deployments(namespace)]
        actions = release_deleted(name, listed)
        if actions:
            log.info("%s/%s no longer exists: releasing what it held", namespace, name)
            await execute_releases(self._api, actions, namespace=namespace, migration=name)
