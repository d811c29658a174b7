"""The migration Jobs and their pods as the watch delivers them: what a reconcile reads first.

Role: :func:`~alembic_operator.controller.observers.observe` asks :meth:`JobCache.job` and
:meth:`JobCache.pods` before it sends a GET of a Job or a LIST of its pods; kopf's watch events
(``handlers.job_event``/``handlers.pod_event``, objects labelled with the migration uid) and
the API's own answers (GET, LIST, create) feed it. It answers only what it can prove current,
and ``None`` otherwise, so the caller reads the API:

- a Job is served only while its entry was confirmed (by an event or an API answer) within
  :data:`TRUST_SECONDS`: kopf re-lists after a watch error without reporting what was deleted
  meanwhile, so an entry nothing confirms any more is read again (and dropped on a 404);
- a Job's pods are served only once the set is known to be complete for that Job (uid): listed
  from the API since start, or the Job was created by this process (it had no pods then, and
  the pod watch delivers every later one), and only while they account for what the Job's
  status counts (``active``, ``succeeded``, ``failed``): the Job and pod watches are separate
  streams, so a Job reported complete before its pod's last update arrived is never judged
  without that update;
- a Job absent from the cache is never reported absent: a miss means "read the API".

The newest resourceVersion wins (integers, compared as numbers; bodies without one are not
kept); DELETED events remove entries and leave a tombstone, so an API answer older than the
deletion does not bring them back. Stored bodies keep what the observer parses: metadata
(without ``managedFields``), status, and of a Job's spec only its containers' names and images
(a pod's spec is dropped).

Must not: talk to the API, parse bodies into model values, or decide anything about a
migration. Entries are handed out as they are stored: callers only read them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

# How long an entry confirmed by nothing since (no event, no API answer) is still served.
TRUST_SECONDS = 60.0
# Tombstones kept per kind (deleted objects whose late API answers must not resurrect them).
TOMBSTONES = 4096
JOB_NAME_LABEL = "job-name"
_UNTIL_DELETED = sys.maxsize  # a tombstone no watch event can pass (see JobCache.job_deleted)

Body = Mapping[str, Any]
Key = tuple[str, str]  # (namespace, name)


def resource_version(body: Body) -> int | None:
    """The body's resourceVersion as a number, or ``None`` when it is not an integer."""
    try:
        return int(str((body.get("metadata") or {}).get("resourceVersion")))
    except ValueError:
        return None


def _key(body: Body) -> Key:
    meta = body.get("metadata") or {}
    return (str(meta.get("namespace")), str(meta.get("name")))


def _uid(body: Body) -> str:
    return str((body.get("metadata") or {}).get("uid") or "")


@dataclass
class _Job:
    body: dict[str, Any]
    version: int
    confirmed: float  # monotonic time of the last event or API answer at this version or newer
    pods_known: bool = False  # the pod set is complete for this Job's uid


@dataclass
class _Pods:
    """The pods of one Job name, by pod name (bodies and their resourceVersions)."""

    bodies: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)


class JobCache:
    """Jobs by (namespace, name) and their pods by the ``job-name`` label, newest first."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._jobs: dict[Key, _Job] = {}
        self._pods: dict[Key, _Pods] = {}  # (namespace, Job name)
        self._dead_jobs: dict[Key, int] = {}  # tombstones: resourceVersion at deletion
        self._dead_pods: dict[Key, int] = {}  # (namespace, pod name)

    # --- feeding ---------------------------------------------------------------------------

    def job_seen(self, body: Body) -> None:
        """A Job from a watch event or an API answer."""
        self._put_job(body, created=False)

    def job_created(self, body: Body) -> None:
        """The Job this process just created: it has no pods yet, the watch brings them all."""
        self._put_job(body, created=True)

    def job_gone(self, body: Body) -> None:
        """A DELETED event: forget the Job (its pods go with their own events)."""
        key, version = _key(body), resource_version(body)
        self._jobs.pop(key, None)
        _bury(self._dead_jobs, key, version)

    def job_deleted(self, namespace: str, name: str) -> None:
        """This process deleted the Job: forget it now and ignore it until its DELETED event.

        Without this, a reconcile between the delete and the watch's DELETED event would still
        see the Job here and delete it (and report it) a second time. The tombstone admits no
        version until the DELETED event sets the real one; a miss means "read the API" anyway.
        """
        key = (namespace, name)
        self._jobs.pop(key, None)
        self._pods.pop(key, None)
        _bury(self._dead_jobs, key, _UNTIL_DELETED)

    def job_absent(self, namespace: str, name: str, *, since: float) -> None:
        """A GET sent at ``since`` found nothing: drop an entry not confirmed after it."""
        entry = self._jobs.get((namespace, name))
        if entry is not None and entry.confirmed <= since:
            del self._jobs[(namespace, name)]

    def pod_seen(self, body: Body) -> None:
        """A pod from a watch event (kept under its ``job-name`` label; others are ignored)."""
        job = _job_name(body)
        version = resource_version(body)
        if job is None or version is None:
            return
        namespace, name = _key(body)
        if self._dead_pods.get((namespace, name), -1) >= version:
            return
        pods = self._pods.setdefault((namespace, job), _Pods())
        cached = pods.bodies.get(name)
        if cached is None or cached[0] < version:
            pods.bodies[name] = (version, _slim(body, keep_spec=False))

    def pod_gone(self, body: Body) -> None:
        """A DELETED event of a pod."""
        namespace, name = _key(body)
        job = _job_name(body)
        if job is not None:
            pods = self._pods.get((namespace, job))
            if pods is not None:
                pods.bodies.pop(name, None)
                if not pods.bodies:
                    del self._pods[(namespace, job)]
        _bury(self._dead_pods, (namespace, name), resource_version(body))

    def pods_listed(
        self,
        namespace: str,
        job_name: str,
        *,
        job_uid: str,
        items: Iterable[Body],
        list_version: str | None,
    ) -> None:
        """An API LIST of a Job's pods: the set is complete for the Job ``job_uid`` from now on.

        Items merge newest-wins; a cached pod missing from the list is dropped when the list
        is newer than it (deleted meanwhile), kept otherwise (created after the list).
        """
        listed: dict[str, Body] = {}
        for item in items:
            listed[_key(item)[1]] = item
            self.pod_seen(item)
        try:
            at = int(str(list_version))
        except ValueError:
            at = None
        pods = self._pods.get((namespace, job_name))
        if pods is not None and at is not None:
            for name, (version, _) in list(pods.bodies.items()):
                if name not in listed and version <= at:
                    del pods.bodies[name]
        entry = self._jobs.get((namespace, job_name))
        if entry is not None and _uid(entry.body) == job_uid:
            entry.pods_known = True

    # --- reading ---------------------------------------------------------------------------

    def now(self) -> float:
        """The cache's clock (for :meth:`job_absent`'s ``since``)."""
        return self._clock()

    def job(self, namespace: str, name: str) -> Body | None:
        """The Job if confirmed within :data:`TRUST_SECONDS`; ``None`` means "read the API"."""
        entry = self._jobs.get((namespace, name))
        if entry is None or self._clock() - entry.confirmed > TRUST_SECONDS:
            return None
        return entry.body

    def pods(self, job: Body) -> Sequence[Body] | None:
        """The pods of ``job`` if the set is complete and accounts for the Job's status.

        ``job`` is the body the caller judges (from :meth:`job` or a GET); ``None`` means
        "list them from the API".
        """
        namespace, name = _key(job)
        entry = self._jobs.get((namespace, name))
        if entry is None or not entry.pods_known or _uid(entry.body) != _uid(job):
            return None
        found = self._pods.get((namespace, name))
        bodies = [b for _, b in found.bodies.values()] if found else []
        return bodies if _accounts_for(job, bodies) else None

    def __len__(self) -> int:
        return len(self._jobs)

    # --- inside ----------------------------------------------------------------------------

    def _put_job(self, body: Body, *, created: bool) -> None:
        key, version = _key(body), resource_version(body)
        if version is None:
            self._jobs.pop(key, None)  # cannot order it: read the API instead
            return
        if self._dead_jobs.get(key, -1) >= version:
            return
        entry = self._jobs.get(key)
        if entry is not None and entry.version > version:
            return
        now = self._clock()
        if entry is not None and entry.version == version:
            entry.confirmed = now
            entry.pods_known = entry.pods_known or created
            return
        same_job = entry is not None and _uid(entry.body) == _uid(body)
        self._jobs[key] = _Job(
            _slim(body, keep_spec=True),
            version,
            now,
            pods_known=created or (same_job and entry is not None and entry.pods_known),
        )


def _slim(body: Body, *, keep_spec: bool) -> dict[str, Any]:
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


def _bury(tombstones: dict[Key, int], key: Key, version: int | None) -> None:
    tombstones.pop(key, None)
    tombstones[key] = version if version is not None else 0
    while len(tombstones) > TOMBSTONES:
        del tombstones[next(iter(tombstones))]


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
