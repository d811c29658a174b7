"""The Job/pod cache fed by the watch: what it serves, and when it sends the reader to the API.

Steps run one clock tick apart (the order they arrive in); an API answer names when its request
was sent (``sent=-2``: two steps ago), which is all that orders it against the watch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from alembic_operator.controller.caches import CachePolicy
from alembic_operator.controller.jobcache import JobCache
from alembic_operator.controller.kubeapi import KubeApi
from alembic_operator.controller.observers import observe, parse_job, parse_pod
from alembic_operator.model.observations import ObservationPlan
from tests.core.observations import migration

NS = migration().ref.namespace
PERIOD = CachePolicy().resync_seconds


def job(rv: str | int, *, uid: str = "u1", name: str = "j", **status: int) -> dict[str, Any]:
    return {
        "metadata": {"namespace": NS, "name": name, "uid": uid, "resourceVersion": str(rv)},
        "status": dict(status),
    }


def pod(
    rv: str | int, name: str = "p1", *, job_name: str = "j", phase: str = "Running"
) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": NS,
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": str(rv),
            "labels": {"job-name": job_name},
        },
        "status": {"phase": phase},
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def version(body: Mapping[str, Any] | None) -> str | None:
    return None if body is None else str(body["metadata"]["resourceVersion"])


Step = Callable[[JobCache], None]


def run(steps: Sequence[Step]) -> JobCache:
    clock = Clock()
    cache = JobCache(clock=clock)
    for step in steps:
        clock.now += 1  # each step arrives after the one before
        step(cache)
    return cache


def answered(body: dict[str, Any], *, sent: int = 0) -> Step:
    """A GET's answer; its request left ``-sent`` steps before this one."""
    return lambda c: c.job_answered(body, since=c.now() + sent)


# --- Jobs: ordering, deletion, trust ---------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param([lambda c: c.job_seen(job(5))], "5", id="seen"),
        pytest.param(
            [lambda c: c.job_seen(job(10)), answered(job(9), sent=-2)],
            "10",
            id="an answer to a request sent before the last event loses (no numbers compared)",
        ),
        pytest.param(
            [lambda c: c.job_seen(job(9)), answered(job(10))], "10", id="a fresh answer wins"
        ),
        pytest.param(
            [lambda c: c.job_seen(job(10)), lambda c: c.job_seen(job(9))],
            "9",
            id="watch events apply in the stream's order (9 < 10 means nothing)",
        ),
        pytest.param(
            [answered(job(10)), lambda c: c.job_seen(job(9))],
            None,
            id="another version before the answer's echo (lagging or newer): read the API",
        ),
        pytest.param(
            [answered(job(10)), lambda c: c.job_seen(job(10)), lambda c: c.job_seen(job(11))],
            "11",
            id="once echoed, the stream's order again",
        ),
        pytest.param([lambda c: c.job_seen(job("abc"))], "abc", id="opaque version: kept"),
        pytest.param(
            [lambda c: c.job_seen(job(5)), lambda c: c.job_gone(job(6))], None, id="DELETED"
        ),
        pytest.param(
            [lambda c: c.job_gone(job(6)), answered(job(5), sent=-2)],
            None,
            id="an answer older than the deletion does not resurrect it",
        ),
        pytest.param(
            [lambda c: c.job_gone(job(6)), answered(job(5))],
            None,
            id="nor does any later answer or event of the deleted uid",
        ),
        pytest.param(
            [lambda c: c.job_gone(job(6)), lambda c: c.job_seen(job(7, uid="u2"))],
            "7",
            id="recreated under the same name",
        ),
        pytest.param(
            [lambda c: c.job_seen(job(5)), lambda c: c.job_absent(NS, "j", since=c.now() - 2)],
            "5",
            id="a 404 sent before the last confirmation keeps it",
        ),
        pytest.param(
            [lambda c: c.job_seen(job(5)), lambda c: c.job_absent(NS, "j", since=c.now())],
            None,
            id="a 404 sent after the last confirmation drops it",
        ),
        pytest.param([lambda c: c.job_absent(NS, "j", since=c.now())], None, id="miss"),
    ],
)
def test_jobs(steps: Sequence[Step], expected: str | None) -> None:
    assert version(run(steps).job(NS, "j")) == expected


@pytest.mark.parametrize(
    ("refresh", "served"),
    [
        pytest.param(None, False, id="nothing confirmed it: read the API"),
        pytest.param(
            lambda c: c.job_seen(job(5)), True, id="the same version again (a re-list) confirms it"
        ),
        pytest.param(lambda c: c.job_answered(job(5), since=c.now()), True, id="a GET answer"),
        pytest.param(lambda c: c.job_answered(job(6), since=c.now()), True, id="a newer version"),
        pytest.param(
            lambda c: c.job_answered(job(5), since=c.now() - PERIOD),
            False,
            id="an answer to a request sent before the entry was applied confirms nothing",
        ),
    ],
)
def test_an_entry_nothing_confirms_is_not_served_after_the_period(
    refresh: Step | None, served: bool
) -> None:
    clock = Clock()
    cache = JobCache(clock=clock)
    cache.job_seen(job(5))
    clock.now += PERIOD / 2
    assert cache.job(NS, "j") is not None
    if refresh is not None:
        refresh(cache)
    clock.now += PERIOD / 2 + 1
    assert (cache.job(NS, "j") is not None) is served


# --- pods: when the set is complete --------------------------------------------------------


def listed(*items: Any, uid: str = "u1", sent: float = 0) -> Step:
    """A LIST's answer; its request left ``-sent`` steps before this one."""
    return lambda c: c.pods_listed(NS, "j", job_uid=uid, items=items, since=c.now() + sent)


@pytest.mark.parametrize(
    ("steps", "judged", "expected"),
    [
        pytest.param(
            [lambda c: c.job_seen(job(5)), lambda c: c.pod_seen(pod(6))],
            job(5),
            None,
            id="seen on the watch, never listed since start: LIST",
        ),
        pytest.param([lambda c: c.job_seen(job(5)), listed(pod(6))], job(5), ["p1"], id="listed"),
        pytest.param([lambda c: c.job_created(job(5))], job(5), [], id="created by us: none yet"),
        pytest.param(
            [lambda c: c.job_created(job(5)), lambda c: c.pod_seen(pod(6))],
            job(5, active=1),
            ["p1"],
            id="created by us, then its pod from the watch",
        ),
        pytest.param([listed(pod(6))], job(5), None, id="listed before the Job was known"),
        pytest.param(
            [lambda c: c.job_seen(job(5)), listed(pod(6), uid="other")],
            job(5),
            None,
            id="listed for another Job of that name",
        ),
        pytest.param(
            [lambda c: c.job_created(job(5)), lambda c: c.job_seen(job(9, uid="u2"))],
            job(9, uid="u2"),
            None,
            id="recreated: the new Job's pods are not known",
        ),
        pytest.param(
            [lambda c: c.job_created(job(5)), lambda c: c.job_seen(job(6, active=1))],
            job(6, active=1),
            None,
            id="the Job counts an active pod the watch has not delivered",
        ),
        pytest.param(
            [lambda c: c.job_created(job(5)), lambda c: c.pod_seen(pod(6))],
            job(7, succeeded=1),
            None,
            id="complete, but the pod's last update has not arrived: never judged without it",
        ),
        pytest.param(
            [lambda c: c.job_created(job(5)), lambda c: c.pod_seen(pod(7, phase="Succeeded"))],
            job(8, succeeded=1),
            ["p1"],
            id="complete, with the pod's last update",
        ),
        pytest.param(
            [lambda c: c.job_created(job(5)), lambda c: c.pod_seen(pod(7, phase="Succeeded"))],
            job(6, active=1),
            ["p1"],
            id="the pod ahead of the Job's status is fine",
        ),
        pytest.param(
            [
                lambda c: c.job_created(job(5)),
                lambda c: c.pod_seen(pod(7, "p1", phase="Failed")),
            ],
            job(9, failed=1, active=1),
            None,
            id="a retry pod the watch has not delivered",
        ),
        pytest.param(
            [
                lambda c: c.job_created(job(5)),
                lambda c: c.pod_seen(pod(7, "p1", phase="Failed")),
                lambda c: c.pod_seen(pod(8, "p2")),
            ],
            job(9, failed=1, active=1),
            ["p1", "p2"],
            id="failed and retrying, both delivered",
        ),
        pytest.param(
            [
                lambda c: c.job_created(job(5)),
                lambda c: c.pod_seen(pod(7)),
                lambda c: c.pod_gone(pod(8)),
            ],
            job(5),
            [],
            id="DELETED pod",
        ),
        pytest.param(
            [
                lambda c: c.job_created(job(5)),
                lambda c: c.pod_seen(pod(8, phase="Succeeded")),
                listed(pod(7), sent=-2),
            ],
            job(9, succeeded=1),
            ["p1"],
            id="a listed pod older than its last event loses",
        ),
        pytest.param(
            [
                lambda c: c.job_seen(job(5)),
                lambda c: c.pod_gone(pod(8)),
                listed(pod(7), sent=-2),
            ],
            job(5),
            [],
            id="a list older than a pod's deletion does not resurrect it",
        ),
        pytest.param(
            [
                lambda c: c.job_seen(job(5)),
                lambda c: c.pod_seen(pod(50, "old")),
                lambda c: c.pod_seen(pod(150, "new")),
                listed(pod(60, "p1"), sent=-1.5),
            ],
            job(5),
            ["new", "p1"],
            id="a list drops the pods it is newer than, keeps those created after it",
        ),
        pytest.param(
            [
                lambda c: c.job_created(job(5)),
                lambda c: c.pod_seen(pod(6, "other", job_name="k")),
            ],
            job(5),
            [],
            id="pods of other Jobs",
        ),
    ],
)
def test_pods(steps: Sequence[Step], judged: dict[str, Any], expected: list[str] | None) -> None:
    pods = run(steps).pods(judged)
    assert (None if pods is None else sorted(p["metadata"]["name"] for p in pods)) == expected


def full_job() -> dict[str, Any]:
    body = job(5, active=1)
    body["metadata"]["managedFields"] = [{"manager": "kube-controller-manager"}]
    body["metadata"]["labels"] = {"alembic-operator.dev/mode": "plan"}
    container = {"name": "migrate", "image": "app:1", "env": [{"name": "X", "value": "1"}]}
    body["spec"] = {"parallelism": 1, "template": {"spec": {"containers": [container]}}}
    return body


def full_pod() -> dict[str, Any]:
    body = pod(6)
    body["spec"] = {"containers": [{"name": "migrate", "image": "app:1"}]}
    body["status"]["containerStatuses"] = [
        {"name": "migrate", "state": {"terminated": {"exitCode": 3, "message": "{}"}}}
    ]
    return body


def test_stored_bodies_are_slim_copies_with_what_the_observer_parses() -> None:
    cache, body, raw_pod = JobCache(), full_job(), full_pod()
    cache.job_created(body)
    cache.pod_seen(raw_pod)
    body["status"]["active"] = 3  # the cache keeps its own copies
    raw_pod["status"]["phase"] = "Failed"
    stored = cache.job(NS, "j")
    assert stored is not None
    assert parse_job(stored) == parse_job(full_job())
    assert stored["spec"] == {
        "template": {"spec": {"containers": [{"name": "migrate", "image": "app:1"}]}}
    }
    assert "managedFields" not in stored["metadata"]
    pods = cache.pods(stored)
    assert pods is not None
    assert [parse_pod(p) for p in pods] == [parse_pod(full_pod())]
    assert "spec" not in pods[0]


# --- the observer: the API only when the cache cannot answer ---------------------------------


@dataclass
class FakeApi:
    """The reads :func:`observe` makes, answered from ``jobs``/``pods``; records each call."""

    existing: dict[str, dict[str, Any]] = field(default_factory=dict)
    pods: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    jobs: JobCache = field(default_factory=JobCache)

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(f"get {name}")
        found = self.existing.get(name)
        if found is not None:
            self.jobs.job_answered(found, since=self.jobs.now())
        return found

    async def list_job_pods(
        self, namespace: str, job_name: str, *, job_uid: str | None = None
    ) -> list[dict[str, Any]]:
        self.calls.append(f"list {job_name}")
        assert job_uid is not None
        self.jobs.pods_listed(
            namespace, job_name, job_uid=job_uid, items=self.pods, since=self.jobs.now()
        )
        return self.pods


@pytest.mark.parametrize(
    ("cached", "existing", "calls", "found"),
    [
        pytest.param(None, None, ["get j"], False, id="a miss is confirmed absent by a GET"),
        pytest.param(None, job(5), ["get j", "list j"], True, id="a miss found by the GET"),
        pytest.param("seen", job(5), ["list j"], True, id="seen, pods not listed since start"),
        pytest.param("created", job(5), [], True, id="known Job and pods: no request"),
        pytest.param("listed", job(5), [], True, id="listed once: no request after"),
    ],
)
async def test_observe_reads_the_api_only_when_the_cache_cannot_answer(
    cached: str | None, existing: dict[str, Any] | None, calls: list[str], found: bool
) -> None:
    api = FakeApi(existing={"j": existing} if existing else {})
    if cached == "seen":
        api.jobs.job_seen(job(5))
    elif cached == "created":
        api.jobs.job_created(job(5))
    elif cached == "listed":
        api.jobs.job_seen(job(5))
        api.jobs.pods_listed(NS, "j", job_uid="u1", items=[], since=api.jobs.now())
    observed = await observe(cast(KubeApi, api), migration(), ObservationPlan(job_names=("j",)))
    assert api.calls == calls
    assert (observed.job("j") is not None) is found


def test_a_job_this_process_deleted_is_not_served_until_its_deleted_event() -> None:

    cache = JobCache(clock=lambda: 0.0)
    body = {
        "metadata": {"namespace": "ns", "name": "job-1", "uid": "u1", "resourceVersion": "5"},
        "status": {},
    }
    cache.job_seen(body)
    assert cache.job("ns", "job-1") is not None
    cache.job_deleted("ns", "job-1")
    assert cache.job("ns", "job-1") is None
    late = {**body, "metadata": {**body["metadata"], "resourceVersion": "6"}}
    cache.job_seen(late)  # a MODIFIED event from before the deletion, delivered late
    assert cache.job("ns", "job-1") is None
