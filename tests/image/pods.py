"""One pod of a migration Job, run container by container with the real podman.

Just enough of a kubelet to prove the Job spec core/jobs.py writes against a real container
runtime, without a cluster: each field the Job's pod uses becomes the podman flag that means the
same, by the translation the test kubelet's container mode uses too
(:func:`tests.cluster.podman.container_flags`: command, args, env, workingDir, emptyDir as a
0777 host folder, the termination file, the securityContext). A field this does not know fails
the test (so a change to the Job spec is noticed here, not ignored), and so does a
securityContext other than the restricted one the chart promises.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.podman import container_flags, empty_dir, termination_file
from tests.cluster.processes import ConfigError, resolve_env
from tests.image.podman import image_config, podman

POD_FIELDS = {
    "restartPolicy",
    "automountServiceAccountToken",  # false: no token is mounted (podman mounts none)
    "enableServiceLinks",  # false: no service env vars (podman sets none)
    "securityContext",
    "initContainers",
    "containers",
    "volumes",
}
CONTAINER_FIELDS = {
    "name",
    "image",
    "command",
    "args",
    "env",
    "workingDir",
    "securityContext",
    "volumeMounts",
    "terminationMessagePath",
    "terminationMessagePolicy",  # FallbackToLogsOnError: the kubelet's side, nothing to run
}


@dataclass(frozen=True)
class ContainerRun:
    name: str
    exit_code: int
    stdout: str
    stderr: str
    termination_message: str


def _unknown(kind: str, found: Mapping[str, Any], known: set[str]) -> None:
    extra = set(found) - known
    if extra:
        pytest.fail(f"the Job's {kind} has fields tests/image/pods.py cannot run: {sorted(extra)}")


RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
}


def run_pod(
    pod: Mapping[str, Any],
    *,
    workdir: Path,
    secrets: Mapping[tuple[str, str], str],
    network: str = "none",
) -> list[ContainerRun]:
    """Runs the init containers, then the containers, in order; stops at the first failure."""
    _unknown("pod spec", pod, POD_FIELDS)
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    volumes: dict[str, Path] = {}
    for volume in pod["volumes"]:
        assert set(volume) == {"name", "emptyDir"}, f"not an emptyDir: {volume}"
        volumes[volume["name"]] = empty_dir(workdir / "volumes" / volume["name"])
    runs = []
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        run = _run_container(pod, container, volumes, secrets, workdir, network)
        runs.append(run)
        if run.exit_code != 0:
            break
    return runs


def _env(container: Mapping[str, Any], secrets: Mapping[tuple[str, str], str]) -> dict[str, str]:
    """The container's env as the kubelet resolves it, Secrets read from ``secrets``."""

    async def lookup(kind: str, namespace: str, name: str) -> dict[str, str] | None:
        assert kind == "Secret", f"the Job's pod reads a {kind}"
        found = {key: value for (secret, key), value in secrets.items() if secret == name}
        return found or None

    return asyncio.run(resolve_env(container, {"metadata": {"namespace": "shop"}}, lookup))


def _run_container(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    volumes: Mapping[str, Path],
    secrets: Mapping[tuple[str, str], str],
    workdir: Path,
    network: str,
) -> ContainerRun:
    _unknown("container", container, CONTAINER_FIELDS)
    assert container["securityContext"] == RESTRICTED_CONTAINER, container["securityContext"]
    image = container["image"]
    termination = termination_file(workdir / f"{container['name']}.termination-log")
    try:
        flags, args = container_flags(
            {"spec": pod},
            container,
            env=_env(container, secrets),
            volumes=volumes,
            termination=termination,
            image_user=str(image_config(image).get("User", "")),
            network=network,
        )
    except ConfigError as exc:  # e.g. runAsNonRoot and an image running as root
        pytest.fail(f"container {container['name']} ({image}) cannot run: {exc}")
    try:
        result = podman("run", "--rm", *flags, image, *args, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"container {container['name']} ({image}) ran for more than 300 s")
    return ContainerRun(
        name=container["name"],
        exit_code=result.returncode,
        stdout=result.stdout,
        stderr=result.stderr,
        termination_message=termination.read_text(),
    )
