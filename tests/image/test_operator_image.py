"""The operator image, run for real: its commands, its user, the runner init container under the
chart's restricted securityContext, and nothing in it but the product."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from alembic_operator.core import jobs
from alembic_operator.model.migrations import parse_migration
from tests.image.podman import NONROOT, OPERATOR_IMAGE, RESTRICTED, image_config, podman, python_in
from tests.image.pods import run_pod


def test_help_lists_the_commands() -> None:
    result = podman("run", "--rm", "--network=none", *RESTRICTED, OPERATOR_IMAGE, "--help")
    assert result.returncode == 0, result.stderr
    for command in ("run", "migrate", "write-runner", "status"):
        assert command in result.stdout


def test_the_on_call_commands_load() -> None:
    result = podman(
        "run", "--rm", "--network=none", *RESTRICTED, OPERATOR_IMAGE, "status", "--help"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usage" in result.stdout.lower()


def test_runs_as_65532_by_default() -> None:
    assert image_config(OPERATOR_IMAGE)["User"] == NONROOT
    result = python_in(OPERATOR_IMAGE, "import os; print(os.getuid(), os.getgid())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["65532", "65532"]


def test_default_command_is_the_operator() -> None:
    config = image_config(OPERATOR_IMAGE)
    assert config["Entrypoint"] == ["alembic-operator"]
    assert config["Cmd"] == ["run", "--standalone"]


def test_write_runner_under_the_restricted_security_context(tmp_path: Path) -> None:
    """The init container exactly as core/jobs.py writes it, run alone in its pod."""
    body = {
        "apiVersion": "alembic-operator.dev/v1alpha1",
        "kind": "DatabaseMigration",
        "metadata": {"namespace": "shop", "name": "shop-schema", "uid": "u-1", "generation": 1},
        "spec": {"image": "unused", "database": {"urlSecretRef": {"name": "db", "key": "url"}}},
    }
    job = jobs.build_job(parse_migration(body), runner_image=OPERATOR_IMAGE, attempt=1)
    pod = dict(job["spec"]["template"]["spec"])
    pod["containers"] = []  # only the init container here (test_runner_pod runs the whole pod)
    [run] = run_pod(pod, workdir=tmp_path, secrets={})
    assert run.exit_code == 0, run.stdout + run.stderr
    runner = tmp_path / "volumes" / jobs.RUNNER_VOLUME / "runner.py"
    assert run.stdout.strip() == jobs.RUNNER_PATH
    assert runner.stat().st_uid == 65532
    assert runner.stat().st_size > 10_000
    with zipfile.ZipFile(runner) as archive:  # a zipapp: the runner's modules and a __main__
        assert b"def main" in archive.read("alembic_operator/runner/main.py")


PRODUCT_ONLY = r"""
import importlib, importlib.util, json, os, pathlib, pkgutil, shutil, sysconfig
import alembic_operator

modules = sorted(
    m.name
    for m in pkgutil.walk_packages(alembic_operator.__path__, "alembic_operator.")
    if not m.name.endswith(".__main__")  # runs the command when imported
)
failed = {}
for name in modules:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = repr(exc)
# Every extension module of the dependencies loads (the Dockerfile strips their debug symbols).
site = pathlib.Path(sysconfig.get_paths()["purelib"])
extensions = [
    ".".join((*so.relative_to(site).parts[:-1], so.name.split(".")[0]))
    for so in site.rglob("*.so")
    if not any(part.endswith(".libs") for part in so.relative_to(site).parts)
]
for name in extensions:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = repr(exc)
import lightkube
print(json.dumps({
    "modules": modules,
    "failed": failed,
    "extensions": extensions,
    "client": lightkube.AsyncClient.__module__,
    "present": [
        n for n in ("tests", "pip", "setuptools", "wheel", "_distutils_hack",
                    "alembic_operator.emulation", "alembic_operator.sandbox", "kubernetes",
                    "kubernetes_asyncio")
        if importlib.util.find_spec(n) is not None
    ],
    "tools": {t: shutil.which(t) for t in (
        "pip", "pip3", "gcc", "cc", "c++", "g++", "cpp", "make", "ld", "as", "git")
        if shutil.which(t)},
    "leftovers": [p for p in ("/src", "/opt/venv/bin/pip", "/usr/include/python3.11")
                  if os.path.exists(p)],
}))
"""


def test_contains_the_product_only() -> None:
    result = python_in(OPERATOR_IMAGE, PRODUCT_ONLY)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    # Every module of the product and every extension module imports; one Kubernetes client
    # (lightkube) for the operator and the on-call commands, no other.
    assert found["failed"] == {}
    assert {"alembic_operator.cli", "alembic_operator.commands.clusters"} <= set(found["modules"])
    assert "sqlalchemy.engine._row_cy" in found["extensions"]
    assert found["client"] == "lightkube.core.async_client"
    # No test harness, no second Kubernetes client, no installer, no build tools.
    assert found["present"] == []
    assert found["tools"] == {}
    assert found["leftovers"] == []
