"""A pod's container as ``podman`` flags: the one translation the test kubelet's container mode
(:mod:`.runtimes`) and the image tests (``tests/image/pods.py``) share.

Each field becomes the podman flag that means the same on a real kubelet:

- ``command`` -> ``--entrypoint '[...]'`` (the image's ``CMD`` is then dropped, as Kubernetes
  drops it), ``args`` -> trailing arguments; ``$(VAR)`` references expanded from the env;
- ``env`` (already resolved: :func:`tests.cluster.processes.resolve_env`) -> ``-e NAME=VALUE``;
- ``workingDir`` -> ``--workdir``;
- volume mounts -> ``-v HOST:PATH[:ro]`` (``subPath`` under the volume's host folder); an
  ``emptyDir`` is a host folder of mode 0777 (:func:`empty_dir`), as the kubelet makes it;
- ``terminationMessagePath`` -> a bind-mounted host file (mode 0666: any UID writes it);
- ``securityContext`` (pod level, container level winning): ``runAsUser``/``runAsGroup`` ->
  ``--user``; ``runAsNonRoot`` -> the kubelet's check (a numeric, non-zero UID, else
  :class:`~tests.cluster.processes.ConfigError` with the kubelet's message);
  ``readOnlyRootFilesystem`` -> ``--read-only --read-only-tmpfs=false`` (podman would otherwise
  mount tmpfs on /tmp, /var/tmp and /run, which a Kubernetes container does not get);
  ``capabilities`` -> ``--cap-drop``/``--cap-add``; ``allowPrivilegeEscalation: false`` ->
  ``--security-opt no-new-privileges``; ``seccompProfile`` RuntimeDefault -> podman's default
  profile, Unconfined -> ``seccomp=unconfined``; ``privileged`` -> ``--privileged``;
  ``supplementalGroups`` -> ``--group-add``; ``fsGroup`` is satisfied by the 0777 emptyDirs.
  Any other field raises :class:`~tests.cluster.processes.ConfigError` (never silently ignored).

Nothing here imports pytest (the sandbox uses it too); helpers raise :class:`PodmanError`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.cluster.controlplane import REPO
from tests.cluster.processes import (
    DEFAULT_TERMINATION_PATH,
    ConfigError,
    expand_references,
)

IMAGE_SCRIPT = REPO / "scripts" / "image.sh"
# The names scripts/image.sh builds (same environment overrides).
BASE_IMAGE = os.environ.get("BASE_IMAGE", "localhost/python:3.11-slim-bookworm")
OPERATOR_IMAGE = os.environ.get("OPERATOR_IMAGE", "localhost/alembic-operator:dev")
APP_IMAGE = os.environ.get("APP_IMAGE", "localhost/shop-app:dev")
IMAGES = (BASE_IMAGE, OPERATOR_IMAGE, APP_IMAGE)

SECURITY_FIELDS = {
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "readOnlyRootFilesystem",
    "capabilities",
    "allowPrivilegeEscalation",
    "seccompProfile",
    "privileged",
    "supplementalGroups",  # pod level
    "fsGroup",  # pod level: emptyDirs are 0777 already
    "fsGroupChangePolicy",
}


class PodmanError(Exception):
    """podman is missing, or a podman command failed (the message has its output)."""


def podman_path() -> str:
    path = shutil.which("podman")
    if path is None:
        raise PodmanError("podman is not installed: run scripts/image.sh (make image)")
    return path


def podman_sync(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``podman ARGS``, output captured, never raising on a non-zero exit."""
    return subprocess.run(
        [podman_path(), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


async def podman_async(*args: str, seconds: float = 120) -> tuple[int, str, str]:
    """``podman ARGS`` without blocking the event loop: (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        podman_path(),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), seconds)
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


@dataclasses.dataclass(frozen=True)
class LocalImage:
    """A real local image standing for an image reference pods name (container mode).

    ``env``: extra environment below the container's own (like an image ``ENV``), for what the
    host network needs of an image (the sandbox's web app listens on ``PORT=0``).
    """

    name: str
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What ``podman image inspect`` says of a local image."""

    id: str  # sha256 hex of the image config (podman's image ID)
    digest: str  # sha256:... of its manifest
    repo_digests: tuple[str, ...]
    user: str  # the image's USER ("" means root)
    workdir: str

    def digests(self) -> set[str]:
        found = {self.digest, f"sha256:{self.id}"}
        found.update(d.rsplit("@", 1)[-1] for d in self.repo_digests)
        return found


def parse_image_info(inspected: str) -> ImageInfo:
    [data] = json.loads(inspected)
    config = data.get("Config") or {}
    return ImageInfo(
        id=str(data["Id"]),
        digest=str(data.get("Digest") or ""),
        repo_digests=tuple(data.get("RepoDigests") or ()),
        user=str(config.get("User") or ""),
        workdir=str(config.get("WorkingDir") or "/"),
    )


def image_id_for(reference: str, info: ImageInfo) -> str:
    """``status.containerStatuses[].imageID`` as a kubelet reports it: the repository the pod
    named, ``@`` the digest of what ran (``sha256:<image ID>`` when the image has no digest)."""
    if not info.digest:
        return f"sha256:{info.id}"
    repository = reference.split("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    return f"{repository}@{info.digest}"


def empty_dir(path: Path) -> Path:
    """An emptyDir's host folder: writable by any UID, as the kubelet makes it."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


def termination_file(path: Path) -> Path:
    """The host file bind-mounted at ``terminationMessagePath``, empty, writable by any UID."""
    path.write_bytes(b"")
    path.chmod(0o666)
    return path


def _merged_context(pod: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, Any]:
    pod_context = dict((pod.get("spec") or pod).get("securityContext") or {})
    own = dict(container.get("securityContext") or {})
    for context, where in ((pod_context, "pod"), (own, "container")):
        unknown = set(context) - SECURITY_FIELDS
        if unknown:
            raise ConfigError(
                f"{where} securityContext fields the test kubelet cannot run: {sorted(unknown)}"
            )
    return pod_context | own


def _user(context: Mapping[str, Any], image_user: str) -> str | None:
    """The ``--user`` value (None: the image's USER), after the kubelet's runAsNonRoot check."""
    uid, gid = context.get("runAsUser"), context.get("runAsGroup")
    if context.get("runAsNonRoot"):
        effective = str(uid) if uid is not None else image_user.partition(":")[0]
        if not effective or effective == "root":
            raise ConfigError("container has runAsNonRoot and image will run as root")
        if not effective.isdigit():
            raise ConfigError(
                f"container has runAsNonRoot and image has non-numeric user ({effective}), "
                "cannot verify user is non-root"
            )
        if int(effective) == 0:
            raise ConfigError("container has runAsNonRoot and image will run as root")
    if uid is None and gid is None:
        return None
    user = str(uid) if uid is not None else (image_user.partition(":")[0] or "0")
    return f"{user}:{gid}" if gid is not None else user


def security_flags(
    pod: Mapping[str, Any], container: Mapping[str, Any], image_user: str
) -> list[str]:
    """The podman flags of the pod's and the container's securityContext (module doc)."""
    context = _merged_context(pod, container)
    flags: list[str] = []
    user = _user(context, image_user)
    if user is not None:
        flags += ["--user", user]
    if context.get("privileged"):
        flags.append("--privileged")
    if context.get("readOnlyRootFilesystem"):
        flags += ["--read-only", "--read-only-tmpfs=false"]
    capabilities = context.get("capabilities") or {}
    flags += [f"--cap-drop={c}" for c in capabilities.get("drop") or []]
    flags += [f"--cap-add={c}" for c in capabilities.get("add") or []]
    if context.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    seccomp = str((context.get("seccompProfile") or {}).get("type") or "RuntimeDefault")
    if seccomp == "Unconfined":
        flags += ["--security-opt", "seccomp=unconfined"]
    elif seccomp != "RuntimeDefault":
        raise ConfigError(f"seccompProfile {seccomp} is not supported by the test kubelet")
    flags += [f"--group-add={g}" for g in context.get("supplementalGroups") or []]
    return flags


def mount_flags(
    container: Mapping[str, Any], volumes: Mapping[str, Path], termination: Path
) -> list[str]:
    """``-v`` for each volume mount (an unknown volume is a ConfigError) and the termination
    file."""
    flags: list[str] = []
    for mount in container.get("volumeMounts") or []:
        folder = volumes.get(str(mount["name"]))
        if folder is None:
            raise ConfigError(f"volume {mount['name']!r} is not a volume of the pod")
        if mount.get("subPath"):
            folder = empty_dir(folder / str(mount["subPath"]))
        suffix = ":ro" if mount.get("readOnly") else ""
        flags += ["-v", f"{folder}:{mount['mountPath']}{suffix}"]
    path = str(container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH)
    flags += ["-v", f"{termination}:{path}"]
    return flags


def command_flags(
    container: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[list[str], list[str]]:
    """(``--entrypoint`` flags, trailing arguments) for ``command``/``args``, references
    expanded as Kubernetes expands them (from the container's own env)."""
    command = [expand_references(str(c), env) for c in container.get("command") or []]
    args = [expand_references(str(a), env) for a in container.get("args") or []]
    flags = ["--entrypoint", json.dumps(command)] if command else []
    return flags, args


def container_flags(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    volumes: Mapping[str, Path],
    termination: Path,
    image_user: str,
    network: str,
) -> tuple[list[str], list[str]]:
    """(flags for ``podman create``/``run`` before the image, arguments after it)."""
    flags = [f"--network={network}"]
    flags += security_flags(pod, container, image_user)
    flags += mount_flags(container, volumes, termination)
    for name, value in env.items():
        flags += ["-e", f"{name}={value}"]
    if container.get("workingDir"):
        flags += ["--workdir", str(container["workingDir"])]
    entrypoint, args = command_flags(container, env)
    return [*flags, *entrypoint], args


def missing_images(names: Sequence[str]) -> list[str]:
    return [name for name in names if podman_sync("image", "exists", name).returncode != 0]


def build_images(timeout: float = 1800) -> str:
    """Run scripts/image.sh (idempotent; an up-to-date rebuild takes seconds); its output.

    Raises :class:`PodmanError` when it fails or an image it builds is missing afterwards.
    """
    try:
        build = subprocess.run(
            [str(IMAGE_SCRIPT)], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise PodmanError(f"scripts/image.sh did not finish in {exc.timeout} s") from exc
    if build.returncode != 0:
        raise PodmanError(
            f"scripts/image.sh exited {build.returncode}; the images cannot be used:\n"
            f"{build.stdout[-4000:]}{build.stderr[-4000:]}"
        )
    missing = missing_images(IMAGES)
    if missing:
        raise PodmanError(f"scripts/image.sh succeeded but {missing} do not exist")
    return build.stdout
