"""The migration Jobs and their pods as the watch delivers them: what a reconcile reads first.

Role: :func:`~alembic_operator.controller.observers.observe` asks :meth:`JobCache.job` and
:meth:`JobCache.pods` before it sends a GET of a Job or a LIST of its pods; kopf's watch events
(``handlers.job_event``/``handlers.pod_event``, objects labelled with the migration uid) and
the API's own answers (GET, LIST, create) feed it. Both kinds live in
:class:`~alembic_operator.controller.caches.Store`\\ s, so the one cache policy orders, deletes
and expires them (opaque resourceVersions, uid tombstones, an entry nothing confirmed within
the period is read again). On top of it, this module answers only what it can prove current:

- a Job's pods are served only once the set is known to be complete for that Job (uid): listed
  from the API, or the Job was created by this process (it had no pods then, and the pod watch
  delivers every later one), within the policy's period (after it, one LIST again), and only
  while they account for what the Job's status counts (``active``, ``succeeded``,
  ``failed``): the Job and pod watches are separate streams, so a Job reported complete before
  its pod's last update arrived is never judged without that update;
- a Job absent from the cache is never reported absent: a miss means "read the API".

Stored bodies keep what the observer parses: metadata (without ``managedFields``), status, and
of a Job's spec only its containers' names and images (a pod's spec is dropped).

Must not: talk to the API, parse bodies into model values, or decide anything about a
migration. Entries are handed out as they are stored: callers only read them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from copy import deepcopy
from typing import Any

from alembic_operator.controller.caches import (
    Body,
    CachePolicy,
    Key,
    Store,
    key_of,
    uid_of,
    version_of,
)

JOB_NAME_LABEL = "job-name"


class JobCache:
    """Jobs by (namespace, name) and their pods by the ``job-name`` label."""

    def __init__(
        self, policy: CachePolicy | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._jobs: Store[dict[str, Any]] = Store(policy, clock=clock)
        self._pods: Store[dict[str, Any]] = Store(policy, clock=clock)  # (namespace, pod name)
        self._by_job: dict[Key, set[str]] = {}  # (namespace, Job name) -> pod names
        self._known: dict[Key, tuple[str, float]] = {}  # complete pod set: (Job uid, since)

    # --- feeding ---------------------------------------------------------------------------

    def job_seen(self, body: Body) -> None:
        """A Job from a watch event."""
        self._jobs.seen(key_of(body), _slim(body, True), uid=uid_of(body), version=version_of(body))

    def job_answered(self, body: Body, *, since: float) -> None:
        """A Job from a GET sent at ``since``."""
        key, uid = key_of(body), uid_of(body)
        self._jobs.answered(key, _slim(body, True), uid=uid, version=version_of(body), since=since)

    def job_created(self, body: Body) -> None:
        """The Job this process just created: it has no pods yet, the watch brings them all."""
        key, uid = key_of(body), uid_of(body)
        self._jobs.written(key, _slim(body, True), uid=uid, version=version_of(body))
        self._known[key] = (uid, self._jobs.now())

    def job_gone(self, body: Body) -> None:
        """A DELETED event: forget the Job (its pods go with their own events)."""
        self._jobs.gone(key_of(body), uid=uid_of(body))

    def job_deleted(self, namespace: str, name: str) -> None:
        """This process deleted the Job: forget it now, and ignore that Job's late events.

        Without this, a reconcile between the delete and the watch's DELETED event would still
        see the Job here and delete it (and report it) a second time.
        """
        self._jobs.gone((namespace, name))
        self._known.pop((namespace, name), None)

    def job_absent(self, namespace: str, name: str, *, since: float) -> None:
        """A GET sent at ``since`` found nothing: drop an entry not confirmed after it."""
        self._jobs.absent((namespace, name), since=since)

    def pod_seen(self, body: Body) -> None:
        """A pod from a watch event (kept under its ``job-name`` label; others are ignored)."""
        job = _job_name(body)
        if job is not None:
            key = key_of(body)
            if self._pods.seen(key, _slim(body, False), uid=uid_of(body), version=version_of(body)):
                self._by_job.setdefault((key[0], job), set()).add(key[1])

    def pod_gone(self, body: Body) -> None:
        """A DELETED event of a pod."""
        self._pods.gone(key_of(body), uid=uid_of(body))

    def pods_listed(
        self, namespace: str, job_name: str, *, job_uid: str, items: Iterable[Body], since: float
    ) -> None:
        """An API LIST of a Job's pods sent at ``since``: the set is complete for ``job_uid``.

        Items are answers (applied unless something newer arrived meanwhile); a cached pod
        missing from the list is dropped unless the watch confirmed it after the list was sent
        (created meanwhile).
        """
        listed = set()
        for item in items:
            key = key_of(item)
            listed.add(key[1])
            slim = _slim(item, False)
            if self._pods.answered(
                key, slim, uid=uid_of(item), version=version_of(item), since=since
            ):
                self._by_job.setdefault((namespace, job_name), set()).add(key[1])
        for name in self._by_job.get((namespace, job_name), set()) - listed:
            self._pods.absent((namespace, name), since=since)
        self._known[(namespace, job_name)] = (job_uid, since)

    # --- reading ---------------------------------------------------------------------------

    def now(self) -> float:
        """The cache's clock (for ``since``)."""
        return self._jobs.now()

    def job(self, namespace: str, name: str) -> Body | None:
        """The Job if confirmed within the policy's period; ``None`` means "read the API"."""
        return self._jobs.get((namespace, name))

    def pods(self, job: Body) -> Sequence[Body] | None:
        """The pods of ``job`` if the set is complete and accounts for the Job's status.

        ``job`` is the body the caller judges (from :meth:`job` or a GET); ``None`` means
        "list them from the API".
        """
        key, uid = key_of(job), uid_of(job)
        entry = self._jobs.entry(key)
        known = self._known.get(key)
        period = self._jobs.policy.resync_seconds
        if entry is None or entry.uid != uid or known is None or known[0] != uid:
            return None
        if self.now() - known[1] > period:
            return None  # re-list once a period: a pod deletion the watch missed ends there
        names = self._by_job.get(key, set())
        for name in [n for n in names if self._pods.entry((key[0], n)) is None]:
            names.discard(name)  # deleted meanwhile
        fresh = [self._pods.get((key[0], n)) for n in sorted(names)]
        if any(p is None for p in fresh):
            return None  # a pod the store cannot vouch for: list them
        pods = [p for p in fresh if p is not None]
        return pods if _accounts_for(job, pods) else None

    def __len__(self) -> int:
        return len(self._jobs)


def _slim(body: Body, keep_spec: bool) -> dict[str, Any]:
    """A copy of what the observer parses (the rest of a body is most of its size)."""
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    slim: dict[str, Any] = {"metadata": meta, "status": body.get("status") or {}}
    if keep_spec:
        pod_spec = ((body.get("spec") or {}).get("template") or {}).get("spec") or {}
        containers = [
            {k: c[k] for k in ("name", "image") if k in c} for c in pod_spec.get("containers") or ()
        ]
        slim["spec"] = {"template": {"spec": {"containers": containers}}}
    return deepcopy(slim)


def _job_name(pod: Body) -> str | None:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    name = labels.get(JOB_NAME_LABEL)
    return str(name) if name else None


def _accounts_for(job: Body, pods: Sequence[Body]) -> bool:
    """Whether ``pods`` hold every pod the Job's status counts (by phase, as the Job does)."""
    status = job.get("status") or {}
    phases = [str((p.get("status") or {}).get("phase") or "") for p in pods]
    succeeded = phases.count("Succeeded")
    failed = phases.count("Failed")
    want_succeeded = int(status.get("succeeded") or 0)
    want_failed = int(status.get("failed") or 0)
    want_active = int(status.get("active") or 0)
    return (
        succeeded >= want_succeeded
        and failed >= want_failed
        and len(pods) >= want_active + want_succeeded + want_failed
    )
