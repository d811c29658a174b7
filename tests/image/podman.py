"""The real podman the image tests drive, and the images scripts/image.sh builds.

Nothing here is mocked: every helper runs the machine's podman. A missing podman or image fails
the test with the reason and the command that fixes it; image tests are never skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE_SCRIPT = REPO / "scripts" / "image.sh"
# The names scripts/image.sh builds (same environment overrides).
BASE_IMAGE = os.environ.get("BASE_IMAGE", "localhost/python:3.11-slim-bookworm")
OPERATOR_IMAGE = os.environ.get("OPERATOR_IMAGE", "localhost/alembic-operator:dev")
APP_IMAGE = os.environ.get("APP_IMAGE", "localhost/shop-app:dev")
IMAGES = (BASE_IMAGE, OPERATOR_IMAGE, APP_IMAGE)
# The UID/GID both Dockerfiles run as (USER 65532:65532), which the chart's runAsNonRoot checks.
NONROOT = "65532:65532"
# The restricted securityContext, as podman flags: readOnlyRootFilesystem, capabilities drop ALL,
# allowPrivilegeEscalation false. seccompProfile RuntimeDefault is podman's default profile.
RESTRICTED = ("--read-only", "--cap-drop=ALL", "--security-opt", "no-new-privileges")


def podman_path() -> str:
    path = shutil.which("podman")
    if path is None:
        pytest.fail("podman is not installed: run scripts/image.sh (make image)", pytrace=False)
    return path


def podman(
    *args: str, timeout: float = 120, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Runs ``podman ARGS``; with ``check`` a non-zero exit fails the test with its output."""
    result = subprocess.run(
        [podman_path(), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"podman {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}",
            pytrace=False,
        )
    return result


def image_config(image: str) -> dict[str, Any]:
    inspected = json.loads(podman("image", "inspect", image, check=True).stdout)
    return dict(inspected[0]["Config"])


def python_in(image: str, code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """``python -c CODE`` in a throw-away container of ``image`` (its own user, read-only root)."""
    return podman(
        "run",
        "--rm",
        "--network=none",
        *RESTRICTED,
        *flags,
        "--entrypoint",
        "python",
        image,
        "-c",
        code,
    )
