"""The sandbox's images in container mode (``--runtime podman``): the real local images.

The test kubelet then runs every pod with podman (:mod:`tests.cluster.runtimes`) from the images
``make image`` (scripts/image.sh) builds: the operator image for the runner init container, the
example app image for the migration and the shop-web pods, and a broken next version of the
app image, built here on top of it with one more revision whose upgrade fails.

Pods share the host's network (PostgreSQL on 127.0.0.1 is reachable), so the web app gets
``PORT=0`` (two replicas on one host cannot share port 8000), as the process mode's
``shop_app.py`` does.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.cluster.podman import APP_IMAGE, OPERATOR_IMAGE, PodmanError, missing_images, podman_sync

BROKEN_LOCAL_IMAGE = "localhost/alembic-operator-sandbox/shop-app:1.1-broken"
WEB_ENV = {"PORT": "0"}


def require_images() -> None:
    """The images scripts/image.sh builds exist (PodmanError naming the fix if not)."""
    missing = missing_images([OPERATOR_IMAGE, APP_IMAGE])
    if missing:
        raise PodmanError(
            f"container mode needs the images {', '.join(missing)}: build them with `make image` "
            "(scripts/image.sh, as root)"
        )


def build_broken_image(revision: str, source: str) -> str:
    """The app image plus ``versions/<revision>.py``; its local name (seconds: one layer)."""
    with tempfile.TemporaryDirectory(prefix="sandbox-broken-image-") as folder:
        context = Path(folder)
        (context / f"{revision}.py").write_text(source)
        (context / f"{revision}.py").chmod(0o644)
        (context / "Containerfile").write_text(
            f"FROM {APP_IMAGE}\nCOPY {revision}.py /app/migrations/versions/{revision}.py\n"
        )
        built = podman_sync(
            "build", "--pull=never", "--quiet", "-t", BROKEN_LOCAL_IMAGE, str(context), timeout=300
        )
    if built.returncode != 0:
        raise PodmanError(f"building {BROKEN_LOCAL_IMAGE} failed:\n{built.stderr[-3000:]}")
    return BROKEN_LOCAL_IMAGE
