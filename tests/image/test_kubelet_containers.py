"""The test kubelet's container mode: pods on the real control plane run with the real podman
from the images scripts/image.sh builds — env, command/args, workingDir, emptyDir, the
securityContext, the termination message, exit codes, logs, deletion, and no leftovers."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.cluster.client import Client
from tests.cluster.fixtures import APP_IMAGE
from tests.cluster.kubelet import TestKubelet
from tests.cluster.podman import BASE_IMAGE, LocalImage, podman_sync
from tests.cluster.runtimes import LABEL
from tests.operator.harness import wait_for

pytestmark = pytest.mark.podman_kubelet
ROOT_IMAGE = "docker.io/library/python:3.11-slim"  # played by the base image, which runs as root
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
}


def pod_body(name: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "demo"}},
        "spec": {"restartPolicy": "Never", "containers": list(containers), **spec},
    }


async def pod_where(
    kube: Client,
    namespace: str,
    name: str,
    check: Callable[[dict[str, Any]], bool],
    within: float = 60.0,
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        code, pod = await kube.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
        return pod if code == 200 and check(pod) else None

    return dict(await wait_for(probe, within=within, what=f"pod {name}"))


def finished(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def containers_of(kubelet: TestKubelet) -> list[str]:
    instance = str(kubelet.workdir.resolve())
    listed = podman_sync(
        "ps", "--all", "--filter", f"label={LABEL}={instance}", "--format", "{{.Names}}"
    )
    return listed.stdout.split()


async def test_a_restricted_pod_runs_as_the_kubelet_would_run_it(
    kube: Client, kubelet: TestKubelet, namespace: str
) -> None:
    await kube.ok(
        "POST",
        f"/api/v1/namespaces/{namespace}/secrets",
        {"metadata": {"name": "db"}, "data": {"url": base64.b64encode(b"secret-url").decode()}},
    )
    await kube.ok(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        {"metadata": {"name": "settings"}, "data": {"LEVEL": "debug"}},
    )
    script = (
        "import json, os, sys\n"
        "def writable(path):\n"
        "    try:\n"
        "        open(path, 'w').close()\n"
        "        return True\n"
        "    except OSError:\n"
        "        return False\n"
        "found = {'uid': os.getuid(), 'gid': os.getgid(), 'cwd': os.getcwd(),\n"
        "         'argv': sys.argv[1:], 'root_writable': writable('/x'),\n"
        "         'tmp_writable': writable('/tmp/x'), 'shared': open('/data/hello').read(),\n"
        "         'env': {k: os.environ.get(k) for k in ('URL', 'LEVEL', 'POD', 'GREETING')}}\n"
        "open('/dev/termination-log', 'w').write(json.dumps(found))\n"
        "print('to the log'); sys.exit(3)\n"
    )
    volumes = [{"name": "tmp", "emptyDir": {}}, {"name": "data", "emptyDir": {}}]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "data", "mountPath": "/data"}]
    init = {
        "name": "prepare",
        "image": APP_IMAGE,
        "command": ["python", "-c", "open('/data/hello', 'w').write('from init')"],
        "securityContext": RESTRICTED,
        "volumeMounts": mounts,
    }
    main = {
        "name": "main",
        "image": APP_IMAGE,
        "command": ["python", "-c", script],
        "args": ["$(GREETING)", "$$(GREETING)"],
        "workingDir": "/app/migrations",
        "env": [
            {"name": "URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "GREETING", "value": "hello"},
        ],
        "envFrom": [{"configMapRef": {"name": "settings"}}],
        "securityContext": RESTRICTED | {"runAsUser": 4321, "runAsGroup": 4322},
        "volumeMounts": mounts,
    }
    body = pod_body("restricted", main, initContainers=[init], volumes=volumes)
    await kube.ok("POST", f"/api/v1/namespaces/{namespace}/pods", body)
    pod = await pod_where(kube, namespace, "restricted", finished)
    assert pod["status"]["phase"] == "Failed"
    [status] = pod["status"]["containerStatuses"]
    terminated = status["state"]["terminated"]
    assert terminated["exitCode"] == 3
    found = json.loads(terminated["message"])
    assert found == {
        "uid": 4321,
        "gid": 4322,
        "cwd": "/app/migrations",
        "argv": ["hello", "$(GREETING)"],
        "root_writable": False,
        "tmp_writable": True,
        "shared": "from init",
        "env": {"URL": "secret-url", "LEVEL": "debug", "POD": "restricted", "GREETING": "hello"},
    }
    assert status["imageID"].startswith("registry.example.com/shop/app@sha256:")
    code, log = await kube.get(f"/api/v1/namespaces/{namespace}/pods/restricted/log")
    assert (code, log) == (200, "to the log\n")
    assert await wait_for(lambda: _none_left(kubelet), within=30, what="containers removed")


async def _none_left(kubelet: TestKubelet) -> bool:
    return not containers_of(kubelet)


async def test_deleting_a_running_pod_stops_its_container_within_the_grace(
    kube: Client, kubelet: TestKubelet, namespace: str
) -> None:
    sleeper = {
        "name": "main",
        "image": APP_IMAGE,
        "command": ["python", "-c", "import time; print('up', flush=True); time.sleep(300)"],
    }
    pods = f"/api/v1/namespaces/{namespace}/pods"
    await kube.ok("POST", pods, pod_body("sleeper", sleeper, terminationGracePeriodSeconds=1))
    await pod_where(kube, namespace, "sleeper", lambda p: p["status"].get("phase") == "Running")
    assert await wait_for(
        lambda: _logged(kube, namespace, "sleeper", "up"), within=30, what="the container's log"
    )
    started = time.monotonic()
    await kube.ok("DELETE", f"{pods}/sleeper")

    async def gone() -> bool:
        code, _ = await kube.get(f"{pods}/sleeper")
        return code == 404

    assert await wait_for(gone, within=30, what="the pod to be removed")
    assert time.monotonic() - started < 20
    [run] = [r for r in kubelet.runs if r.pod == "sleeper"]
    assert run.exit_code == 137  # python as PID 1 ignores SIGTERM: killed after the grace
    assert containers_of(kubelet) == []


async def _logged(kube: Client, namespace: str, pod: str, text: str) -> bool:
    code, log = await kube.get(f"/api/v1/namespaces/{namespace}/pods/{pod}/log")
    return code == 200 and text in str(log)


async def test_run_as_non_root_refuses_an_image_running_as_root(
    kube: Client, kubelet: TestKubelet, namespace: str
) -> None:
    kubelet.images[ROOT_IMAGE] = LocalImage(BASE_IMAGE)
    container = {
        "name": "main",
        "image": ROOT_IMAGE,
        "command": ["python", "-c", "print(1)"],
        "securityContext": {"runAsNonRoot": True},
    }
    await kube.ok("POST", f"/api/v1/namespaces/{namespace}/pods", pod_body("root", container))

    def refused(pod: dict[str, Any]) -> bool:
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        waiting = (statuses[0].get("state") or {}).get("waiting") or {}
        return waiting.get("reason") == "CreateContainerConfigError"

    pod = await pod_where(kube, namespace, "root", refused)
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["message"] == "container has runAsNonRoot and image will run as root"
    assert kubelet.runs == []


async def test_images_not_mapped_or_of_another_digest_are_not_pulled(
    kube: Client, kubelet: TestKubelet, namespace: str
) -> None:
    pinned = f"{APP_IMAGE.rsplit(':', 1)[0]}@sha256:{'0' * 64}"
    pods = f"/api/v1/namespaces/{namespace}/pods"
    for name, image in (("unknown", "registry.example.com/other:1"), ("pinned", pinned)):
        body = pod_body(name, {"name": "main", "image": image, "command": ["true"]})
        await kube.ok("POST", pods, body)

    def pulling(pod: dict[str, Any]) -> bool:
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        return (statuses[0].get("state") or {}).get("waiting", {}).get("reason") == "ErrImagePull"

    for name in ("unknown", "pinned"):
        pod = await pod_where(kube, namespace, name, pulling)
        assert pod["status"]["phase"] == "Pending"
    assert kubelet.runs == []
