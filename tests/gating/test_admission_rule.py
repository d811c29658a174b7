"""core/admission.py, table-driven: which pods are gated and when, and refusing a resume."""

from __future__ import annotations

from dataclasses import replace

import pytest

from alembic_operator.core.admission import (
    deployment_of,
    gate_pod,
    is_read_before_admitting,
    may_ungate,
    pod_holds,
    resume_refusal,
)
from alembic_operator.model.migrations import Migration
from alembic_operator.model.observations import WorkloadPod
from alembic_operator.model.spec import GateMode
from alembic_operator.model.status import LastSucceeded, Phase
from tests.gating.test_gates import IMAGE, NAME, dep, gated

OLD = "ghcr.io/acme/shop:1.4.1"
NEW = IMAGE  # ghcr.io/acme/shop:1.4.2, the migration's spec.image


def pod(
    *,
    labels: dict[str, str] | None = None,
    images: tuple[str, ...] = (NEW,),
    owner: tuple[str, str] | None = ("ReplicaSet", "web-abc12"),
    gated: bool = False,
    held_by: tuple[str, ...] = (),
) -> WorkloadPod:
    return WorkloadPod(
        namespace="ns",
        name="web-abc12-x",
        labels={"pod-template-hash": "abc12", **(labels or {})},
        images=images,
        owner=owner,
        gated=gated,
        held_by=held_by,
    )


def running_after(old: str = OLD) -> Migration:
    """Running for the new image, having succeeded for ``old`` before."""
    m = gated(Phase.RUNNING)
    return replace(m, status=replace(m.status, last_succeeded=LastSucceeded(image=old)))


LABEL = {"alembic-operator.dev/migration": NAME}


@pytest.mark.parametrize(
    ("the_pod", "migrations", "holders"),
    [
        pytest.param(pod(), {NAME: gated(Phase.RUNNING)}, [NAME], id="spec.gate-by-deployment"),
        pytest.param(pod(), {NAME: gated(Phase.SUCCEEDED)}, [], id="succeeded-for-its-image"),
        pytest.param(pod(images=(OLD,)), {NAME: running_after()}, [], id="old-version-serves"),
        pytest.param(pod(), {NAME: running_after()}, [NAME], id="new-version-waits"),
        pytest.param(pod(), {NAME: gated(Phase.FAILED)}, [NAME], id="failed-keeps-it"),
        pytest.param(
            pod(images=("ghcr.io/acme/shop:9",)),
            {NAME: gated(Phase.SUCCEEDED)},
            [NAME],
            id="succeeded-for-another-image",
        ),
        pytest.param(pod(owner=None), {NAME: gated(Phase.RUNNING)}, [], id="not-declared"),
        pytest.param(pod(owner=None, labels=LABEL), {}, [NAME], id="label-before-migration"),
        pytest.param(
            pod(owner=None, labels=LABEL),
            {NAME: gated(Phase.RUNNING, gate={"deployments": ["other"]})},
            [NAME],
            id="label-declared",
        ),
        pytest.param(
            pod(labels=LABEL),
            {NAME: gated(Phase.RUNNING, gate={"mode": GateMode.NONE.value})},
            [],
            id="mode-none-gates-nothing",
        ),
        pytest.param(
            pod(owner=None, labels={"tier": "web"}),
            {NAME: gated(Phase.RUNNING, gate={"selector": {"matchLabels": {"tier": "web"}}})},
            [NAME],
            id="selector-on-pod-labels",
        ),
        pytest.param(
            pod(labels={**LABEL, "alembic-operator.dev/migration-uid": "u"}),
            {NAME: gated(Phase.RUNNING)},
            [],
            id="the-operators-own-job-pod",
        ),
    ],
)
def test_pod_holds(
    the_pod: WorkloadPod, migrations: dict[str, Migration], holders: list[str]
) -> None:
    assert [h.migration for h in pod_holds(the_pod, migrations)] == holders
    gate = gate_pod(the_pod, migrations)
    assert (list(gate.held_by) if gate else []) == holders


@pytest.mark.parametrize(
    ("owner", "labels", "name"),
    [
        pytest.param(("ReplicaSet", "web-abc12"), {}, "web", id="replicaset"),
        pytest.param(("ReplicaSet", "web-zzz"), {}, None, id="hash-mismatch"),
        pytest.param(("StatefulSet", "db"), {}, None, id="statefulset"),
        pytest.param(None, {}, None, id="bare-pod"),
    ],
)
def test_deployment_of(
    owner: tuple[str, str] | None, labels: dict[str, str], name: str | None
) -> None:
    assert deployment_of(pod(owner=owner, labels=labels)) == name


@pytest.mark.parametrize(
    ("the_pod", "migrations", "gone", "allowed"),
    [
        pytest.param(pod(gated=True, held_by=(NAME,)), {NAME: gated()}, (), True, id="success"),
        pytest.param(
            pod(gated=True, held_by=(NAME,)), {NAME: gated(Phase.FAILED)}, (), False, id="failure"
        ),
        pytest.param(pod(gated=True, held_by=(NAME,)), {}, (), False, id="holder-not-seen-yet"),
        pytest.param(pod(gated=True, held_by=(NAME,)), {}, (NAME,), True, id="holder-deleted"),
        pytest.param(
            pod(gated=True, held_by=(NAME,), labels=LABEL, owner=None),
            {},
            (NAME,),
            False,
            id="deleted-but-named-by-label",
        ),
        pytest.param(pod(gated=False), {NAME: gated()}, (), False, id="not-gated"),
    ],
)
def test_may_ungate(
    the_pod: WorkloadPod, migrations: dict[str, Migration], gone: tuple[str, ...], allowed: bool
) -> None:
    assert may_ungate(the_pod, migrations, held_by=the_pod.held_by, gone=gone) is allowed


@pytest.mark.parametrize(
    ("old_paused", "held_by", "new_paused", "migration", "refused"),
    [
        pytest.param(True, (NAME,), False, running_after(), True, id="resume-while-running"),
        pytest.param(True, (NAME,), False, gated(), False, id="resume-after-success"),
        pytest.param(True, (), False, running_after(), False, id="paused-by-a-person"),
        pytest.param(True, (NAME,), True, running_after(), False, id="not-a-resume"),
        pytest.param(True, (NAME,), False, None, False, id="holder-gone"),
    ],
)
def test_resume_refusal(
    old_paused: bool,
    held_by: tuple[str, ...],
    new_paused: bool,
    migration: Migration | None,
    refused: bool,
) -> None:
    migrations = {NAME: migration} if migration is not None else {}
    old = dep(paused=old_paused, held_by=held_by)
    message = resume_refusal(migrations, old, dep(paused=new_paused, held_by=held_by))
    assert (message is not None) is refused
    if message is not None:
        assert (
            f"held by DatabaseMigration ns/{NAME} until it has Succeeded for image {NEW}"
            in (message)
            or f"/{NAME} until it has Succeeded for image {NEW} (now: Running)" in message
        )


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        pytest.param(pod(owner=("StatefulSet", "db")), True, id="statefulset-pod"),
        pytest.param(pod(owner=("DaemonSet", "agent")), True, id="daemonset-pod"),
        pytest.param(pod(owner=("Job", "report-28512")), True, id="job-pod-cronjob-too"),
        pytest.param(pod(), False, id="replicaset-pod-its-deployment-was-held-in-its-request"),
        pytest.param(pod(owner=None), False, id="bare-pod"),
        pytest.param(pod(owner=("StatefulSet", "db"), labels=LABEL), False, id="label-declared"),
        pytest.param(pod(owner=("StatefulSet", "db"), gated=True), False, id="gated-already"),
        pytest.param(
            pod(owner=("Job", "m-1"), labels={"alembic-operator.dev/migration-uid": "u"}),
            False,
            id="a-migration-jobs-own-pod",
        ),
    ],
)
def test_is_read_before_admitting(candidate: WorkloadPod, expected: bool) -> None:
    """Which pods the webhook decides again on a fresh read of the namespace's migrations."""
    assert is_read_before_admitting(candidate) is expected
