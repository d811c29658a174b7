"""The real tools the delivery tests drive, installed by scripts/tools.sh (run by scripts/test.sh).

A missing tool fails the test with the command that installs it: these checks are never skipped.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "alembic-operator"
TOOLS = REPO / ".tools" / "bin"
VENV_BIN = Path(sys.executable).parent
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]


def tool(name: str) -> Path:
    for folder in (TOOLS, VENV_BIN):
        path = folder / name
        if path.is_file():
            return path
    pytest.fail(
        f"{name} is not installed (looked in {TOOLS} and {VENV_BIN}): run scripts/tools.sh",
        pytrace=False,
    )


def run(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        check=False,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def helm_template(
    values: dict[str, Any] | None = None,
    *,
    chart: Path = CHART,
    namespace: str = "ops",
    release: str = "aop",
) -> subprocess.CompletedProcess[str]:
    args: list[str | Path] = [tool("helm"), "template", release, chart, "--namespace", namespace]
    if values:
        args += ["--values", "-"]
    return run(*args, stdin=yaml.safe_dump(values) if values else None)


def render(values: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    result = helm_template(values, **kwargs)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
