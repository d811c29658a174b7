"""The images under test: (re)built once per session by scripts/image.sh.

scripts/image.sh is idempotent and its layer cache makes an up-to-date rebuild take seconds, so
the tests always judge images of the current tree, never a stale build. On a fresh machine it
installs buildah/podman and builds everything (minutes; docs/images.md).
"""

from __future__ import annotations

import subprocess

import pytest

from tests.image.podman import IMAGE_SCRIPT, IMAGES, podman


@pytest.fixture(scope="session", autouse=True)
def images() -> tuple[str, ...]:
    try:
        build = subprocess.run(
            [str(IMAGE_SCRIPT)], capture_output=True, text=True, timeout=1800, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"scripts/image.sh did not finish in {exc.timeout} s", pytrace=False)
    if build.returncode != 0:
        pytest.fail(
            f"scripts/image.sh exited {build.returncode}; the images cannot be tested:\n"
            f"{build.stdout[-4000:]}{build.stderr[-4000:]}",
            pytrace=False,
        )
    for image in IMAGES:
        if podman("image", "exists", image).returncode != 0:
            pytest.fail(f"scripts/image.sh succeeded but {image} does not exist", pytrace=False)
    return IMAGES
