"""How the migration container is invoked: the runner's settings, and the image it runs.

Role: pure builders used by :mod:`alembic_operator.core.jobs`. The embedded runner gets its
settings as flags with ``--args-only`` (it then reads no ``ALEMBIC_OPERATOR_*`` variable, so the
app's ``env``/``envFrom`` cannot change them); ``runner.type: command`` keeps its documented
environment contract. An approved plan's apply Job runs the image digest the plan Job ran and
tells the runner what the plan applies (revisions and SQL hash): DESIGN §5, docs/approvals.md.
"""

from __future__ import annotations

import enum
import json
import re
from typing import Any

from alembic_operator.model.spec import (
    DATABASE_URL_ENV,
    REVISION_LIST_LIMIT,
    MigrationSpec,
    RunnerType,
)
from alembic_operator.model.status import PlanStatus

ENV_PREFIX = "ALEMBIC_OPERATOR_"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"


class RunMode(enum.StrEnum):
    """What the runner does: ``apply`` the migration, or only render the ``plan``."""

    APPLY = "apply"
    PLAN = "plan"


def _settings(
    spec: MigrationSpec, mode: RunMode, approved: PlanStatus | None
) -> list[tuple[str, str | None]]:
    """The runner's settings (docs/runner.md): (environment name without prefix, value)."""
    alembic, sessions = spec.alembic, spec.database.session_settings
    return [
        ("MODE", mode.value),
        ("REVISION", spec.revision),
        ("CONFIG", alembic.config),
        ("SECTION", alembic.section),
        ("WORKDIR", alembic.working_dir),
        ("X_ARGS", json.dumps(dict(sorted(alembic.x_args.items()))) if alembic.x_args else None),
        ("ALLOW_DOWNGRADE", "true" if spec.allow_downgrade else "false"),
        ("LOCK", spec.database.lock.value),
        ("LOCK_TIMEOUT_SECONDS", str(spec.database.lock_timeout_seconds)),
        ("PG_LOCK_TIMEOUT", sessions.lock_timeout),
        ("PG_STATEMENT_TIMEOUT", sessions.statement_timeout),
        ("TERMINATION_MESSAGE_PATH", TERMINATION_MESSAGE_PATH),
        # A plan's SQL goes to the log behind a line prefix the operator reads it back by.
        ("SQL_FILE", "-prefixed" if mode is RunMode.PLAN else None),
        # An approved plan runs only from the revisions it was rendered from.
        ("EXPECT_REVISIONS", _expected_start(approved) if approved is not None else None),
    ]


def _expected_start(plan: PlanStatus) -> str:
    return ",".join(r for r in (plan.from_revision or "").split(",") if r) or "base"


_FLAGS = {
    "MODE": "--mode",
    "REVISION": "--revision",
    "CONFIG": "--config",
    "SECTION": "--section",
    "WORKDIR": "--workdir",
    "LOCK": "--lock",
    "LOCK_TIMEOUT_SECONDS": "--lock-timeout",
    "PG_LOCK_TIMEOUT": "--pg-lock-timeout",
    "PG_STATEMENT_TIMEOUT": "--pg-statement-timeout",
    "TERMINATION_MESSAGE_PATH": "--termination-message-path",
    "SQL_FILE": "--sql-file",
    "EXPECT_REVISIONS": "--expect-revisions",
}


def runner_args(
    spec: MigrationSpec, *, mode: RunMode = RunMode.APPLY, approved: PlanStatus | None = None
) -> list[str]:
    """The embedded runner's command-line: every setting as a flag, and ``--args-only``.

    With ``--args-only`` the runner reads no ``ALEMBIC_OPERATOR_*`` variable, so nothing in the
    app's ``env``/``envFrom`` changes its settings (the lock name, the mode, the approved plan).
    Values are passed as ``--flag=value``: a value starting with ``-`` stays a value.
    """
    args = ["--args-only"]
    for name, value in _settings(spec, mode, approved):
        if value is not None and name in _FLAGS:
            args.append(f"{_FLAGS[name]}={value}")
    for key, value in sorted(spec.alembic.x_args.items()):
        args += ["-x", f"{key}={value}"]
    if spec.allow_downgrade:
        args.append("--allow-downgrade")
    if approved is not None and mode is RunMode.APPLY:
        # status.plan keeps the newest REVISION_LIST_LIMIT revisions: the SQL hash covers more.
        if len(approved.revisions) < REVISION_LIST_LIMIT:
            args.append(f"--expect-plan-revisions={','.join(approved.revisions)}")
        if approved.sql_sha256:
            args.append(f"--expect-sql-sha256={approved.sql_sha256}")
    return args


def runner_env(
    spec: MigrationSpec, *, mode: RunMode = RunMode.APPLY, approved: PlanStatus | None = None
) -> list[dict[str, Any]]:
    """``DATABASE_URL`` from the Secret; for ``runner.type: command`` the runner's settings too
    (its documented contract, docs/runner.md). The embedded runner gets them as flags."""
    ref = spec.database.url_secret_ref
    env: list[dict[str, Any]] = [
        {
            "name": DATABASE_URL_ENV,
            "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
        }
    ]
    if spec.runner.type is RunnerType.COMMAND:
        settings = _settings(spec, mode, approved)
        env += [{"name": ENV_PREFIX + k, "value": v} for k, v in settings if v is not None]
        options = _pg_options(spec)
        if options:
            env.append({"name": "PGOPTIONS", "value": options})
    return env


def _pg_options(spec: MigrationSpec) -> str:
    """libpq options for a user command (the embedded runner sets PGOPTIONS itself)."""
    sessions = spec.database.session_settings
    pairs = (
        ("lock_timeout", sessions.lock_timeout),
        ("statement_timeout", sessions.statement_timeout),
    )
    return " ".join(f"-c {name}={value}" for name, value in pairs if value)


_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")


def pinned_image(image: str, image_id: str | None) -> str:
    """``image`` pinned to the digest of ``image_id`` (a pod's ``containerStatuses[].imageID``).

    ``repo:tag`` (or ``repo@sha256:...``) with an imageID ending in ``@sha256:<hex>`` becomes
    ``repo@sha256:<hex>``: what the plan ran is what the apply runs, even if the tag moved. An
    imageID without a repository digest (no registry behind the image, a runtime that reports
    none) leaves ``image`` as it is: the runner's plan check still refuses different revisions.
    """
    match = _DIGEST.search(image_id or "")
    if match is None:
        return image
    repository = image.split("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        repository = repository[: len(repository) - len(last)] + last.split(":", 1)[0]
    return f"{repository}@{match.group(1)}"


def requested_image(job_image: str | None, plan: PlanStatus | None) -> str | None:
    """The image a Job was asked to run as the spec names it (a pinned Job: the plan's tag)."""
    if plan is not None and plan.image and job_image == pinned_image(plan.image, plan.image_id):
        return plan.image
    return job_image
