"""One pod of a migration Job, run container by container with the real podman.

Just enough of a kubelet to prove the Job spec core/jobs.py writes against a real container
runtime: each field the Job's pod uses becomes the podman flag that means the same, and a field
this does not know fails the test (so a change to the Job spec is noticed here, not ignored):

  command -> --entrypoint '[...]', args -> trailing arguments, env (value, secretKeyRef) -> -e,
  workingDir -> --workdir, emptyDir -> a host folder (mode 0777, as the kubelet makes it),
  terminationMessagePath -> a bind-mounted host file, readOnlyRootFilesystem -> --read-only,
  capabilities.drop ALL -> --cap-drop=ALL, allowPrivilegeEscalation false -> no-new-privileges,
  runAsNonRoot -> the image's USER must be numeric and not 0 (then it runs as that user),
  seccompProfile RuntimeDefault -> podman's default seccomp profile.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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


def _user(image: str) -> str:
    """runAsNonRoot: the kubelet runs the image's USER and refuses a non-numeric or root one."""
    user = str(image_config(image).get("User", ""))
    uid = user.partition(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"{image}: USER {user!r} fails runAsNonRoot"
    return user


def _security_flags(context: Mapping[str, Any], image: str) -> list[str]:
    expected = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }
    assert dict(context) == expected, f"securityContext changed: {context}"
    return [
        "--user",
        _user(image),
        "--read-only",
        "--cap-drop=ALL",
        "--security-opt",
        "no-new-privileges",
    ]


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
        folder = workdir / "volumes" / volume["name"]
        folder.mkdir(parents=True)
        folder.chmod(0o777)  # the kubelet's emptyDir: writable by any UID
        volumes[volume["name"]] = folder
    runs = []
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        run = _run_container(container, volumes, secrets, workdir, network)
        runs.append(run)
        if run.exit_code != 0:
            break
    return runs


def _run_container(
    container: Mapping[str, Any],
    volumes: Mapping[str, Path],
    secrets: Mapping[tuple[str, str], str],
    workdir: Path,
    network: str,
) -> ContainerRun:
    _unknown("container", container, CONTAINER_FIELDS)
    image = container["image"]
    termination = workdir / f"{container['name']}.termination-log"
    termination.touch()
    termination.chmod(0o666)
    flags = ["--rm", f"--network={network}"]
    flags += _security_flags(container["securityContext"], image)
    for mount in container["volumeMounts"]:
        flags += ["-v", f"{volumes[mount['name']]}:{mount['mountPath']}"]
    flags += ["-v", f"{termination}:{container['terminationMessagePath']}"]
    for env in container.get("env", []):
        if "value" in env:
            value = env["value"]
        else:
            ref = env["valueFrom"]["secretKeyRef"]
            value = secrets[(ref["name"], ref["key"])]
        flags += ["-e", f"{env['name']}={value}"]
    if "workingDir" in container:
        flags += ["--workdir", container["workingDir"]]
    flags += ["--entrypoint", json.dumps(container["command"])]
    try:
        result = podman("run", *flags, image, *container.get("args", []), timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"container {container['name']} ({image}) ran for more than 300 s")
    return ContainerRun(
        name=container["name"],
        exit_code=result.returncode,
        stdout=result.stdout,
        stderr=result.stderr,
        termination_message=termination.read_text(),
    )
