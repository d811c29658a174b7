"""A migration Job's pod, run for real: the operator image's init container writes the embedded
runner, then the example app image runs it against PostgreSQL and reports through the
termination file, exactly as core/jobs.py builds the pod (env, command, mounts, security)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from alembic.config import Config
from alembic.script import ScriptDirectory

from alembic_operator.core import jobs
from alembic_operator.model.migrations import parse_migration
from alembic_operator.model.reasons import ExitCode
from tests.databases import Database, fresh_postgresql
from tests.image.podman import APP_IMAGE, OPERATOR_IMAGE, REPO
from tests.image.pods import ContainerRun, run_pod

MANIFESTS = REPO / "examples" / "app" / "manifests"
HEADS = set(
    ScriptDirectory.from_config(Config(str(REPO / "migrations" / "alembic.ini"))).get_heads()
)


@pytest.fixture
def db() -> Iterator[Database]:
    with fresh_postgresql() as database:
        yield database


def example_pod(**spec: Any) -> tuple[dict[str, Any], tuple[str, str]]:
    """The example app's DatabaseMigration (as skaffold deploys it, spec.image set to the app
    image), turned into its Job's pod spec; and the Secret key holding the database URL."""
    body = yaml.safe_load((MANIFESTS / "databasemigration.yaml").read_text())
    body["metadata"] |= {"namespace": "shop", "uid": "0f1e2d3c-image-test", "generation": 1}
    body["spec"] |= {"image": APP_IMAGE, **spec}
    job = jobs.build_job(parse_migration(body), runner_image=OPERATOR_IMAGE, attempt=1)
    ref = body["spec"]["database"]["urlSecretRef"]
    return job["spec"]["template"]["spec"], (ref["name"], ref["key"])


def run_example(db: Database, tmp_path: Path, **spec: Any) -> tuple[ContainerRun, dict[str, Any]]:
    pod, secret = example_pod(**spec)
    # --network=host: the container reaches the machine's PostgreSQL at 127.0.0.1.
    runs = run_pod(pod, workdir=tmp_path, secrets={secret: db.url}, network="host")
    assert [r.name for r in runs] == [jobs.INIT_CONTAINER, jobs.MIGRATE_CONTAINER], runs
    init, migrate = runs
    assert init.exit_code == 0, init.stdout + init.stderr
    assert migrate.termination_message, f"no termination message: {migrate.stderr}"
    return migrate, json.loads(migrate.termination_message)


def test_the_app_image_runs_the_embedded_runner_to_head(db: Database, tmp_path: Path) -> None:
    migrate, result = run_example(db, tmp_path)
    assert migrate.exit_code == 0, migrate.stdout + migrate.stderr
    assert result["outcome"] == "Succeeded", result
    assert result["reason"] == "Applied"
    assert set(result["toRevision"].split(",")) == HEADS
    assert db.versions() == HEADS
    # The same JSON is the last line of the container's stdout (the kubelet's log fallback).
    assert json.loads(migrate.stdout.strip().splitlines()[-1]) == result


def test_a_failure_reaches_the_exit_code_and_the_termination_file(
    db: Database, tmp_path: Path
) -> None:
    migrate, result = run_example(db, tmp_path, revision="0123456789ab")
    assert migrate.exit_code == ExitCode.REVISION_NOT_FOUND, migrate.stdout + migrate.stderr
    assert result["outcome"] == "Failed"
    assert result["reason"] == "RevisionNotFound"
    assert db.versions() == set()
