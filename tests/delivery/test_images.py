"""The Dockerfiles: hadolint-clean and built the way the design says (no Docker engine here)."""

from __future__ import annotations

import re

import pytest

from alembic_operator.core import jobs
from tests.delivery.tools import REPO, run, tool

DOCKERFILES = ["Dockerfile", "examples/app/Dockerfile"]


@pytest.mark.parametrize("path", DOCKERFILES)
def test_hadolint(path: str) -> None:
    result = run(tool("hadolint"), "--failure-threshold", "style", REPO / path)
    assert result.returncode == 0, result.stdout + result.stderr


def instructions(path: str) -> list[tuple[str, str]]:
    text = (REPO / path).read_text().replace("\\\n", " ")
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


@pytest.mark.parametrize("path", DOCKERFILES)
def test_multi_stage_slim_non_root(path: str) -> None:
    steps = instructions(path)
    args = dict(rest.split("=", 1) for word, rest in steps if word == "ARG" and "=" in rest)
    stages = [rest for word, rest in steps if word == "FROM"]
    assert len(stages) == 2 and stages[0].endswith("AS builder")
    final_base = stages[-1].replace("${PYTHON_IMAGE}", args.get("PYTHON_IMAGE", ""))
    assert re.fullmatch(r"python:3\.11-slim(-bookworm)?", final_base), final_base
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    final = steps[last_from + 1 :]
    # Nothing is built or installed in the final stage: it only copies the builder's venv.
    assert not any(word == "RUN" for word, _ in final)
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in final
    assert ("USER", "65532:65532") in final
    assert final[-1][0] in ("CMD", "ENTRYPOINT")


def test_operator_image_entrypoint_serves_run_and_the_runner_init_container() -> None:
    steps = dict(instructions("Dockerfile"))  # the last of each instruction wins
    assert steps["ENTRYPOINT"] == '["alembic-operator"]'
    assert "PATH=/opt/venv/bin:$PATH" in steps["ENV"]
    # The Job's init container calls the console script by name: it must be on the image's PATH.
    assert jobs.INIT_CONTAINER == "write-runner"
    source = (REPO / "operator" / "alembic_operator" / "core" / "jobs.py").read_text()
    assert '"command": ["alembic-operator", "write-runner", RUNNER_PATH]' in source


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert "**" in lines
    for needed in ("!pyproject.toml", "!README.md", "!operator/", "!migrations/"):
        assert needed in lines
    # The test harness (tests/) is not let back in: it never reaches an image.
    assert not any(line.startswith("!tests") for line in lines)


@pytest.mark.parametrize("path", DOCKERFILES)
def test_dockerignore_lets_every_copied_file_in(path: str) -> None:
    """Everything is ignored (``**``) but what a ``!`` line brings back: each COPY source must be
    one of those (examples/app/server.py once was not, and the app image did not build)."""
    lines = (REPO / ".dockerignore").read_text().splitlines()
    kept = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    for word, rest in instructions(path):
        if word != "COPY" or rest.startswith("--from="):
            continue
        for raw in rest.split()[:-1]:
            source = raw.rstrip("/").removeprefix("./")
            assert any(source == k or source.startswith(k + "/") for k in kept), (path, source)
            assert (REPO / source).exists(), (path, source)
