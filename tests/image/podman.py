"""The real podman the image tests drive, and the images scripts/image.sh builds.

Nothing here is mocked: every helper runs the machine's podman. A missing podman or image fails
the test with the reason and the command that fixes it; image tests are never skipped.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.cluster.controlplane import REPO
from tests.cluster.podman import (
    APP_IMAGE,
    BASE_IMAGE,
    IMAGE_SCRIPT,
    IMAGES,
    OPERATOR_IMAGE,
    PodmanError,
    podman_sync,
)
from tests.cluster.podman import podman_path as _podman_path

__all__ = ["APP_IMAGE", "BASE_IMAGE", "IMAGES", "IMAGE_SCRIPT", "OPERATOR_IMAGE", "REPO"]
# The UID/GID both Dockerfiles run as (USER 65532:65532), which the chart's runAsNonRoot checks.
NONROOT = "65532:65532"
# The restricted securityContext, as podman flags: readOnlyRootFilesystem (without podman's own
# tmpfs on /tmp, which a Kubernetes container does not get), capabilities drop ALL,
# allowPrivilegeEscalation false. seccompProfile RuntimeDefault is podman's default profile.
RESTRICTED = (
    "--read-only",
    "--read-only-tmpfs=false",
    "--cap-drop=ALL",
    "--security-opt",
    "no-new-privileges",
)


def podman_path() -> str:
    try:
        return _podman_path()
    except PodmanError as exc:
        pytest.fail(str(exc), pytrace=False)


def podman(
    *args: str, timeout: float = 120, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Runs ``podman ARGS``; with ``check`` a non-zero exit fails the test with its output."""
    podman_path()
    result = podman_sync(*args, timeout=timeout)
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
