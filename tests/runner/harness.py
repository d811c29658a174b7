"""Drives the real runner as a subprocess, the way a Job does, and captures everything it emits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic_operator.bundling import write_runner
from tests.conftest import MIGRATIONS

HEAD = "0009_widen_product_name"
ALL_REVISIONS = 10


@dataclass(frozen=True)
class Run:
    exit_code: int
    stdout: str
    stderr: str
    termination: str
    result: dict[str, Any]

    def everything(self) -> str:
        return "\n".join([self.stdout, self.stderr, self.termination])


@dataclass
class Started:
    """A runner subprocess in flight."""

    proc: subprocess.Popen[str]
    termination: Path

    def finish(self, timeout: float = 120) -> Run:
        stdout, stderr = self.proc.communicate(timeout=timeout)
        last_line = stdout.strip().splitlines()[-1] if stdout.strip() else "{}"
        return Run(
            exit_code=self.proc.returncode,
            stdout=stdout,
            stderr=stderr,
            termination=self.termination.read_text(),
            result=json.loads(last_line),
        )


def start_runner(
    url: str,
    *args: str,
    tmp_path: Path,
    project: Path = MIGRATIONS,
    env: dict[str, str] | None = None,
    embedded_python: str | None = None,
) -> Started:
    """Start ``alembic-operator migrate`` (or the embedded file under ``embedded_python``)."""
    termination = tmp_path / f"termination-{os.urandom(4).hex()}"
    termination.touch()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ALEMBIC_OPERATOR_")}
    full_env.update(
        {
            "DATABASE_URL": url,
            "ALEMBIC_OPERATOR_TERMINATION_MESSAGE_PATH": str(termination),
            "ALEMBIC_OPERATOR_WORKDIR": str(project),
            "ALEMBIC_OPERATOR_LOCK_TIMEOUT_SECONDS": "30",
        }
    )
    full_env.update(env or {})
    if embedded_python is None:
        command = [sys.executable, "-m", "alembic_operator", "migrate", *args]
    else:
        runner = write_runner(tmp_path / "runner.py")
        command = [embedded_python, str(runner), *args]
    proc = subprocess.Popen(
        command, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return Started(proc, termination)


def run_runner(url: str, *args: str, tmp_path: Path, timeout: float = 120, **kwargs: Any) -> Run:
    """Run the runner to completion (see :func:`start_runner`)."""
    return start_runner(url, *args, tmp_path=tmp_path, **kwargs).finish(timeout)


def wait_until(predicate: Any, *, timeout: float = 30, what: str = "condition") -> None:
    """Poll ``predicate`` until true or fail after ``timeout`` seconds (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def copy_project(tmp_path: Path, *, extra: dict[str, str] | None = None) -> Path:
    """A copy of the example migrations with extra revision files (name -> source)."""
    project = tmp_path / "project"
    shutil.copytree(MIGRATIONS, project, ignore=shutil.ignore_patterns("__pycache__"))
    for name, source in (extra or {}).items():
        (project / "versions" / name).write_text(textwrap.dedent(source))
    return project


def revision_source(revision: str, down: str | None, upgrade_body: str) -> str:
    """A minimal revision file whose upgrade runs ``upgrade_body`` (already indented 4)."""
    return (
        f'"""test revision {revision}"""\n'
        "import os\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n"
        f"revision = {revision!r}\ndown_revision = {down!r}\n"
        "branch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade():\n{upgrade_body}\n\n\ndef downgrade():\n    pass\n"
    )
