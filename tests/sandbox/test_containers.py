"""The sandbox in container mode (``--runtime podman``): the same success and failure stories,
every pod run by the real podman from the images scripts/image.sh builds, so the Job spec the
operator writes (init container, restricted securityContext, termination file, log tail) is
proven against a real container runtime. It leaves no container behind."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg2
import pytest

from tests.cluster.podman import podman_sync
from tests.cluster.runtimes import LABEL
from tests.databases import PG_ADMIN, Database
from tests.sandbox.test_sandbox import assert_timeline, run_sandbox


def containers_of(workdir: Path) -> list[str]:
    """Containers of the sandbox's kubelet (labelled with its work folder) still there."""
    listed = podman_sync(
        "ps", "--all", "--filter", f"label={LABEL}={workdir / 'kubelet'}", "--format", "{{.Names}}"
    )
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.split()


@pytest.mark.postgresql
def test_sandbox_in_containers(tmp_path: Path, built_images: tuple[str, ...]) -> None:
    name = f"ao_sandbox_{uuid.uuid4().hex[:10]}"
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    try:
        done = run_sandbox(tmp_path, "--runtime", "podman", "--database-url", url)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"sandbox: created database '{name}' on postgresql at 127.0.0.1" in done.stdout
        assert_timeline(done.stdout)
        assert "UNEXPECTED" not in done.stdout
        assert "postgres@" not in done.stdout  # the URL stays in the Secret
        # The failed pod's log tail is the container's output, served through pods/log.
        assert 'relation "order" does not exist' in done.stdout
        assert Database("postgresql", name, url).versions() == {"0009_widen_product_name"}
        assert containers_of(tmp_path.resolve()) == []
    finally:
        admin = psycopg2.connect(**PG_ADMIN, connect_timeout=5)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_container_mode_needs_a_postgresql_database(tmp_path: Path) -> None:
    done = run_sandbox(tmp_path, "--runtime", "podman")
    assert done.returncode == 2
    assert "--runtime podman needs --database-url of a PostgreSQL database" in done.stderr
    assert not (tmp_path / "cluster").exists()  # refused before anything started
