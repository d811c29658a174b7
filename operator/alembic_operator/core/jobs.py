"""The migration Job: its deterministic name, its labels and its full batch/v1 manifest.

Role: pure builders from a :class:`~alembic_operator.model.migrations.Migration` to the Job the
executor creates. The database URL reaches the pod only through ``valueFrom.secretKeyRef``;
no literal URL or password is ever written into the manifest.

Must not: talk to the apiserver, read the clock or the environment (the runner image is a
parameter), or import kopf/kubernetes (import-linter enforces it).

TTL: ``spec.ttlSecondsAfterFinished`` is deliberately *not* copied to the Job. Kubernetes' TTL
controller deletes succeeded and failed Jobs alike, while the API promises that failed Jobs are
kept for inspection and that the outcome is in status before a Job disappears. The operator
therefore deletes succeeded Jobs itself once the TTL has passed (:func:`succeeded_job_expired`).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from alembic_operator.core.invocation import (
    TERMINATION_MESSAGE_PATH,
    RunMode,
    pinned_image,
    runner_args,
    runner_env,
)
from alembic_operator.core.names import HASH_LENGTH, digest
from alembic_operator.model.migrations import Migration, MigrationRef
from alembic_operator.model.reasons import PERMANENT_EXIT_CODES, RETRYABLE_EXIT_CODES
from alembic_operator.model.spec import (
    API_VERSION,
    GROUP,
    KIND,
    MigrationSpec,
    RunnerType,
    thaw,
)
from alembic_operator.model.status import PlanStatus

MAX_NAME = 63
MIGRATE_CONTAINER = "migrate"
INIT_CONTAINER = "write-runner"
RUNNER_DIR = "/alembic-operator"
RUNNER_PATH = f"{RUNNER_DIR}/runner.py"
RUNNER_VOLUME = "alembic-operator"
TMP_VOLUME = "tmp"

LABEL_MIGRATION = f"{GROUP}/migration"
LABEL_MIGRATION_UID = f"{GROUP}/migration-uid"
LABEL_GENERATION = f"{GROUP}/generation"
LABEL_ATTEMPT = f"{GROUP}/attempt"
LABEL_MODE = f"{GROUP}/mode"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
MANAGED_BY = "alembic-operator"

_NOT_IN_LABEL = re.compile(r"[^a-z0-9-]+")
_NOT_IN_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]+")


def job_name(
    migration_name: str,
    *,
    uid: str,
    generation: int,
    attempt: int,
    mode: RunMode = RunMode.APPLY,
) -> str:
    """``<prefix>-<hash>`` (``<prefix>-plan-<hash>`` for plan runs), a DNS-1123 label.

    The hash covers (uid, generation, attempt[, plan]), so the name is stable across operator
    restarts (adoption finds the Job again) and differs per attempt and per incarnation of the
    migration; the prefix is cut to fit 63 characters, so two long names sharing a prefix still
    differ in their hash.
    """
    marker = "-plan" if mode is RunMode.PLAN else ""
    hashed = digest(uid, generation, attempt, *([mode.value] if marker else []))
    suffix = f"{marker}-{hashed}"
    stem = _NOT_IN_LABEL.sub("-", migration_name.lower())[: MAX_NAME - len(suffix)].strip("-")
    return f"{stem or 'migration'}{suffix}"


def label_value(text: str) -> str:
    """``text`` as a label value (<= 63 characters); longer ones get a hash to stay distinct."""
    if len(text) <= MAX_NAME and re.fullmatch(r"([A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?)?", text):
        return text
    hashed = digest(text)
    stem = _NOT_IN_LABEL_VALUE.sub("-", text)[: MAX_NAME - HASH_LENGTH - 1].strip("-._")
    return f"{stem}-{hashed}" if stem else hashed


def job_labels(ref: MigrationRef, *, attempt: int, mode: RunMode = RunMode.APPLY) -> dict[str, str]:
    """Labels linking a Job (and its pod) to one incarnation, generation and attempt."""
    return {
        LABEL_MIGRATION: label_value(ref.name),
        LABEL_MIGRATION_UID: ref.uid,
        LABEL_GENERATION: str(ref.generation),
        LABEL_ATTEMPT: str(attempt),
        LABEL_MODE: mode.value,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMPONENT: "migration",
    }


def owner_reference(ref: MigrationRef) -> dict[str, Any]:
    """The controller owner reference: garbage collection and adoption key on its uid."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": ref.name,
        "uid": ref.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_failure_policy(runner: RunnerType) -> dict[str, Any]:
    """Fail at once on the runner's permanent exit codes, count the retryable ones (explicitly),
    and ignore pods disrupted by preemption, eviction or node drain.

    ``runner.type: command`` gets no exit-code rules: the API promises that any non-zero exit
    of a user command is a retryable failure, and its codes mean nothing in our contract.
    """
    rules: list[dict[str, Any]] = []
    if runner is RunnerType.EMBEDDED:
        for action, codes in (("FailJob", PERMANENT_EXIT_CODES), ("Count", RETRYABLE_EXIT_CODES)):
            rules.append(
                {
                    "action": action,
                    "onExitCodes": {
                        "containerName": MIGRATE_CONTAINER,
                        "operator": "In",
                        "values": list(codes),
                    },
                }
            )
    rules.append(
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    )
    return {"rules": rules}


def pod_security_context() -> dict[str, Any]:
    """The restricted Pod Security Standard, pod level."""
    return {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context() -> dict[str, Any]:
    """The restricted Pod Security Standard, container level, plus a read-only root."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


def _mounts(spec: MigrationSpec) -> list[dict[str, Any]]:
    mounts = [{"name": TMP_VOLUME, "mountPath": "/tmp"}]  # noqa: S108 - an emptyDir, not the host's
    if spec.runner.type is RunnerType.EMBEDDED:
        mounts.append({"name": RUNNER_VOLUME, "mountPath": RUNNER_DIR})
    return mounts


def _container_common(spec: MigrationSpec) -> dict[str, Any]:
    common: dict[str, Any] = {
        "securityContext": container_security_context(),
        "volumeMounts": _mounts(spec),
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if spec.pod.resources is not None:
        common["resources"] = thaw(spec.pod.resources)
    return common


def migrate_container(
    spec: MigrationSpec, *, mode: RunMode = RunMode.APPLY, approved: PlanStatus | None = None
) -> dict[str, Any]:
    """The container that runs the migration; user env and envFrom come after ours (explicit
    ``env`` entries win over ``envFrom`` in Kubernetes, so DATABASE_URL cannot be shadowed).

    An approved plan's apply Job runs the image the plan ran (:func:`pinned_image`)."""
    image = spec.run_image
    if approved is not None and mode is RunMode.APPLY:
        image = pinned_image(image, approved.image_id)
    container: dict[str, Any] = {"name": MIGRATE_CONTAINER, "image": image}
    if spec.runner.type is RunnerType.EMBEDDED:
        container["command"] = [spec.alembic.python, RUNNER_PATH]
        container["args"] = runner_args(spec, mode=mode, approved=approved)
        if spec.alembic.working_dir:
            container["workingDir"] = spec.alembic.working_dir
    else:
        container["command"] = list(spec.runner.command)
        if spec.runner.args:
            container["args"] = list(spec.runner.args)
    container["env"] = runner_env(spec, mode=mode, approved=approved) + thaw(spec.pod.env)
    if spec.pod.env_from:
        container["envFrom"] = thaw(spec.pod.env_from)
    return container | _container_common(spec)


def init_container(spec: MigrationSpec, *, runner_image: str) -> dict[str, Any]:
    """Copies the single-file runner into the shared emptyDir, from the operator's image.

    It gets the migration's resources too: a pod's effective request is the larger of its init
    and app containers, so this costs nothing and satisfies quotas that require limits.
    """
    return {
        "name": INIT_CONTAINER,
        "image": runner_image,
        "command": ["alembic-operator", "write-runner", RUNNER_PATH],
    } | _container_common(spec)


def pod_spec(
    spec: MigrationSpec, *, runner_image: str, mode: RunMode, approved: PlanStatus | None = None
) -> dict[str, Any]:
    """The pod template's spec: restricted security, no API token, the user's pod knobs."""
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
    }
    knobs = spec.pod
    if knobs.service_account_name:
        pod["serviceAccountName"] = knobs.service_account_name
    if knobs.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": name} for name in knobs.image_pull_secrets]
    if knobs.node_selector:
        pod["nodeSelector"] = dict(knobs.node_selector)
    if knobs.tolerations:
        pod["tolerations"] = thaw(knobs.tolerations)
    if knobs.affinity is not None:
        pod["affinity"] = thaw(knobs.affinity)
    volumes: list[dict[str, Any]] = [{"name": TMP_VOLUME, "emptyDir": {}}]
    if spec.runner.type is RunnerType.EMBEDDED:
        pod["initContainers"] = [init_container(spec, runner_image=runner_image)]
        volumes.append({"name": RUNNER_VOLUME, "emptyDir": {}})
    pod["containers"] = [migrate_container(spec, mode=mode, approved=approved)]
    pod["volumes"] = volumes
    return pod


def build_job(
    migration: Migration,
    *,
    runner_image: str,
    attempt: int,
    mode: RunMode = RunMode.APPLY,
    approved: PlanStatus | None = None,
) -> dict[str, Any]:
    """The batch/v1 Job for one attempt of ``migration`` (see the module docstring on TTL).

    ``suspend`` is always false: a suspended migration gets no new Job at all, and a running
    one is left to finish. ``podReplacementPolicy`` is left to its default, which is ``Failed``
    whenever ``podFailurePolicy`` is set: no second pod starts while a terminating one may still
    hold the migration lock. ``approved``: the approved plan an apply Job must run exactly
    (its image digest, its starting revisions, its revisions and SQL hash).
    """
    ref, spec = migration.ref, migration.spec
    labels = job_labels(ref, attempt=attempt, mode=mode)
    template_meta: dict[str, Any] = {"labels": dict(spec.pod.labels) | labels}
    if spec.pod.annotations:
        template_meta["annotations"] = dict(spec.pod.annotations)
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(
                ref.name, uid=ref.uid, generation=ref.generation, attempt=attempt, mode=mode
            ),
            "namespace": ref.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(ref)],
        },
        "spec": {
            "backoffLimit": spec.backoff_limit,
            "activeDeadlineSeconds": spec.active_deadline_seconds,
            "completions": 1,
            "parallelism": 1,
            "suspend": False,
            "podFailurePolicy": pod_failure_policy(spec.runner.type),
            "template": {
                "metadata": template_meta,
                "spec": pod_spec(spec, runner_image=runner_image, mode=mode, approved=approved),
            },
        },
    }
    return job


def succeeded_job_expired(spec: MigrationSpec, *, finished_at: datetime, now: datetime) -> bool:
    """Whether the operator should now delete a *succeeded* Job (failed Jobs are always kept)."""
    ttl = spec.ttl_seconds_after_finished
    return ttl is not None and now >= finished_at + timedelta(seconds=ttl)
