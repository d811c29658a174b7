"""The test kubelet on the real control plane: binding, running, status, logs, deletion.

Job and Deployment logic is the real kube-controller-manager's; these tests check the kubelet's
own part (and that the real controllers work with it).
"""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

from tests.cluster.client import MERGE, Client
from tests.cluster.controlplane import ControlPlane
from tests.cluster.fixtures import tool
from tests.cluster.kubelet import TestKubelet
from tests.kubelet.conftest import PYTHON_IMAGE
from tests.kubelet.helpers import (
    condition,
    eventually,
    finished_job,
    job_body,
    main_state,
    pid_alive,
    pod_body,
    pod_where,
    pods,
    pods_of,
    python,
    runner_policy,
    secrets,
)


def phase_is(*phases: str) -> Any:
    return lambda pod: (pod.get("status") or {}).get("phase") in phases


async def test_a_job_completes_and_its_log_is_served(
    kube: Client, kubelet: TestKubelet, namespace: str
) -> None:
    code = "print('first line'); print('second line')"
    await kube.ok(
        "POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", job_body("hello", python(code))
    )
    job = await finished_job(kube, namespace, "hello")
    assert condition(job, "Complete"), job["status"]
    [pod] = await pods_of(kube, namespace, "hello")
    assert pod["spec"]["nodeName"] == kubelet.node
    assert main_state(pod)["terminated"]["exitCode"] == 0
    assert main_state(pod)["terminated"]["reason"] == "Completed"
    path = f"{pods(namespace)}/{pod['metadata']['name']}/log"
    assert await kube.get(path) == (200, "first line\nsecond line\n")
    assert await kube.get(path, tailLines="1") == (200, "second line\n")


async def test_kubectl_logs_goes_through_the_apiserver(
    control_plane: ControlPlane, kube: Client, kubelet: TestKubelet, namespace: str
) -> None:
    await kube.ok("POST", pods(namespace), pod_body("talker", python("print('via kubectl')")))
    await pod_where(kube, namespace, "talker", phase_is("Succeeded"))
    done = await asyncio.to_thread(
        subprocess.run,
        [str(tool("kubectl")), f"--kubeconfig={control_plane.admin_kubeconfig}", "-n", namespace,
         "logs", "talker"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "via kubectl\n"), done.stderr


async def test_failure_reports_exit_code_and_termination_message(
    kube: Client, kubelet: TestKubelet, namespace: str
) -> None:
    code = (
        "import sys\n"
        "open('/dev/termination-log', 'w').write('{\"reason\": \"broken\"}')\n"
        "print('to the log'); sys.exit(13)"
    )
    await kube.ok("POST", pods(namespace), pod_body("fails", python(code)))
    pod = await pod_where(kube, namespace, "fails", phase_is("Failed"))
    terminated = main_state(pod)["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (13, "Error")
    assert terminated["message"] == '{"reason": "broken"}'


async def test_fallback_to_logs_on_error(
    kube: Client, kubelet: TestKubelet, namespace: str
) -> None:
    container = python(
        "import sys; print('last words'); sys.exit(2)",
        terminationMessagePolicy="FallbackToLogsOnError",
    )
    await kube.ok("POST", pods(namespace), pod_body("falls-back", container))
    pod = await pod_where(kube, namespace, "falls-back", phase_is("Failed"))
    assert main_state(pod)["terminated"]["message"] == "last words\n"


async def test_init_containers_run_first_and_share_empty_dirs(
    kube: Client, kubelet: TestKubelet, namespace: str
) -> None:
    mount = [{"name": "shared", "mountPath": "/shared"}]
    init = python("open('/shared/note', 'w').write('from init')", name="prep", volumeMounts=mount)
    main = python("print(open('/shared/note').read())", volumeMounts=mount)
    body = pod_body(
        "ordered", main, initContainers=[init], volumes=[{"name": "shared", "emptyDir": {}}]
    )
    await kube.ok("POST", pods(namespace), body)
    pod = await pod_where(kube, namespace, "ordered", phase_is("Succeeded", "Failed"))
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert [r.container for r in kubelet.runs] == ["prep", "main"]
    assert await kube.get(f"{pods(namespace)}/ordered/log") == (200, "from init\n")


async def test_env_from_secrets_config_maps_and_fields(
    kube: Client, kubelet: TestKubelet, namespace: str
) -> None:
    container = python(
        "import os; print(os.environ['URL'], os.environ['APP_MODE'], os.environ['POD'])",
        env=[
            {"name": "URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "APP_"}],
    )
    await kube.ok("POST", pods(namespace), pod_body("configured", container))
    # The Secret is missing: the container waits, as a kubelet does, and starts once it exists.
    await pod_where(
        kube,
        namespace,
        "configured",
        lambda p: main_state(p).get("waiting", {}).get("reason") == "CreateContainerConfigError",
    )
    assert kubelet.runs == []
    await kube.ok(
        "POST", secrets(namespace), {"metadata": {"name": "db"}, "stringData": {"url": "sqlite://"}}
    )
    await kube.ok(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        {"metadata": {"name": "settings"}, "data": {"MODE": "blue"}},
    )
    await pod_where(kube, namespace, "configured", phase_is("Succeeded"))
    assert await kube.get(f"{pods(namespace)}/configured/log") == (
        200,
        "sqlite:// blue configured\n",
    )


async def test_gated_pods_are_not_bound_until_their_gates_are_removed(
    kube: Client, kubelet: TestKubelet, namespace: str
) -> None:
    body = pod_body("gated", python("print('ran')"), schedulingGates=[{"name": "example.com/wait"}])
    await kube.ok("POST", pods(namespace), body)
    pod = await pod_where(
        kube,
        namespace,
        "gated",
        lambda p: any(
            c.get("reason") == "SchedulingGated" for c in p["status"].get("conditions", [])
        ),
    )
    assert not pod["spec"].get("nodeName")
    assert kubelet.runs == []
    await kube.ok(
        "PATCH", f"{pods(namespace)}/gated", {"spec": {"schedulingGates": None}}, content_type=MERGE
    )
    pod = await pod_where(kube, namespace, "gated", phase_is("Succeeded"))
    assert pod["spec"]["nodeName"] == kubelet.node


async def test_deleting_a_running_pod_stops_its_process(
    kube: Client, kubelet: TestKubelet, namespace: str
) -> None:
    await kube.ok(
        "POST", pods(namespace), pod_body("sleeper", python("import time; time.sleep(600)"))
    )
    await pod_where(kube, namespace, "sleeper", phase_is("Running"))
    await eventually(lambda: _true(bool(kubelet.runs)), what="the process to start")
    pid = kubelet.runs[0].pid
    assert pid is not None and pid_alive(pid)
    await kube.ok("DELETE", f"{pods(namespace)}/sleeper", params={"gracePeriodSeconds": "1"})

    async def gone() -> bool:
        status, _ = await kube.get(f"{pods(namespace)}/sleeper")
        return status == 404

    await eventually(gone, what="the pod to be removed")
    assert not pid_alive(pid)


async def test_hold_at_start_keeps_the_pod_pending(
    kube: Client, kubelet: TestKubelet, namespace: str
) -> None:
    release = kubelet.hold("held")
    await kube.ok("POST", pods(namespace), pod_body("held", python("print('go')")))
    pod = await pod_where(kube, namespace, "held", lambda p: bool(p["spec"].get("nodeName")))
    assert pod["status"].get("phase", "Pending") == "Pending" and kubelet.runs == []
    release.set()
    await pod_where(kube, namespace, "held", phase_is("Succeeded"))


async def test_unknown_images_are_not_pulled(
    kube: Client, kubelet: TestKubelet, namespace: str
) -> None:
    container = {"name": "main", "image": "registry.example.com/nowhere:1"}
    await kube.ok("POST", pods(namespace), pod_body("unpullable", container))
    pod = await pod_where(
        kube,
        namespace,
        "unpullable",
        lambda p: main_state(p).get("waiting", {}).get("reason") == "ErrImagePull",
    )
    assert pod["status"]["phase"] == "Pending"


async def test_permanent_exit_code_fails_the_job_through_the_pod_failure_policy(
    kube: Client, kubelet: TestKubelet, namespace: str
) -> None:
    body = job_body(
        "permanent", python("import sys; sys.exit(12)"), podFailurePolicy=runner_policy()
    )
    body["spec"]["backoffLimit"] = 3
    await kube.ok("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body)
    job = await finished_job(kube, namespace, "permanent")
    failed = condition(job, "Failed")
    assert failed and failed["reason"] == "PodFailurePolicy", job["status"]
    assert len(await pods_of(kube, namespace, "permanent")) == 1


async def test_a_deployment_rolls_out_with_the_real_controllers(
    kube: Client, kubelet: TestKubelet, namespace: str
) -> None:
    labels = {"app": "web"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [python("import time; time.sleep(600)", name="web")]},
            },
        },
    }
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    await kube.ok("POST", path, deployment)

    async def available() -> dict[str, Any] | None:
        current = await kube.ok("GET", f"{path}/web")
        return current if current.get("status", {}).get("availableReplicas") == 2 else None

    await eventually(available, within=60, what="2 available replicas")
    listed = await kube.ok("GET", pods(namespace), params={"labelSelector": "app=web"})
    assert {p["spec"]["nodeName"] for p in listed["items"]} == {kubelet.node}
    assert all(p["spec"]["containers"][0]["image"] == PYTHON_IMAGE for p in listed["items"])


async def _true(value: bool) -> bool:
    await asyncio.sleep(0)
    return value
