"""LocalKubelet end to end over HTTP: Jobs whose containers run `python -c ...` locally."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from alembic_operator.emulation.apiserver import ApiServer
from alembic_operator.emulation.kubelet import LocalKubelet
from tests.emulation.helpers import Client
from tests.kubelet.helpers import (
    JOBS,
    PODS,
    SECRETS,
    condition,
    eventually,
    finished_job,
    first_attempt,
    get_job,
    job_body,
    main_state,
    pid_alive,
    pod_where,
    pods_of,
    python,
    runner_policy,
)

SUCCESS = (
    "import os\n"
    "open('/dev/termination-log', 'w').write('{\"outcome\": \"done\"}')\n"
    "print('hello from', os.environ['HOSTNAME'])\n"
    "print('leaked' if 'KUBELET_TEST_LEAK' in os.environ else 'clean')\n"
)


async def test_success_completes_the_job_with_the_termination_message(
    kubelet: LocalKubelet, client: Client, api: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBELET_TEST_LEAK", "secret-from-the-host")
    await client.ok("POST", JOBS, job_body("ok", python(SUCCESS)))
    job = await finished_job(client, "ok")
    status = job["status"]
    assert [c["type"] for c in status["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert condition(job, "Complete")["reason"] == "CompletionsReached"
    assert status["succeeded"] == 1 and "failed" not in status and "active" not in status
    assert status["startTime"] and status["completionTime"]

    [pod] = await pods_of(client, "ok")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["metadata"]["name"].startswith("ok-") and len(pod["metadata"]["name"]) == 8
    labels = pod["metadata"]["labels"]
    assert labels["job-name"] == labels["batch.kubernetes.io/job-name"] == "ok"
    assert labels["controller-uid"] == job["metadata"]["uid"]
    [owner] = pod["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Job",
        "ok",
        job["metadata"]["uid"],
        True,
    )
    terminated = main_state(pod)["terminated"]
    assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"
    assert terminated["message"] == '{"outcome": "done"}'
    assert terminated["startedAt"] and terminated["finishedAt"]

    status_code, log = await client.get(f"{PODS}/{pod['metadata']['name']}/log")
    assert status_code == 200
    assert f"hello from {pod['metadata']['name']}" in log and "clean" in log
    # Writes went through the subresources, as a kubelet and a Job controller do.
    assert api.count(verb="patch", plural="jobs", subresource="status") >= 3
    assert api.count(verb="patch", plural="pods", subresource="status") >= 3
    assert api.count(verb="patch", plural="jobs", subresource=None) == 0


async def test_permanent_exit_code_fails_at_once_through_pod_failure_policy(
    kubelet: LocalKubelet, client: Client
) -> None:
    body = job_body("permanent", python("raise SystemExit(11)"), podFailurePolicy=runner_policy())
    body["spec"]["backoffLimit"] = 6
    await client.ok("POST", JOBS, body)
    job = await finished_job(client, "permanent")
    assert [c["type"] for c in job["status"]["conditions"]] == ["FailureTarget", "Failed"]
    failed = condition(job, "Failed")
    assert failed["reason"] == "PodFailurePolicy"
    assert "failed with exit code 11 matching FailJob rule at index 0" in failed["message"]
    assert job["status"]["failed"] == 1
    [pod] = await pods_of(client, "permanent")
    assert pod["status"]["phase"] == "Failed"
    assert main_state(pod)["terminated"]["exitCode"] == 11
    assert main_state(pod)["terminated"]["reason"] == "Error"


async def test_retryable_exit_code_is_counted_up_to_the_backoff_limit(
    kubelet: LocalKubelet, client: Client
) -> None:
    body = job_body("retryable", python("raise SystemExit(21)"), podFailurePolicy=runner_policy())
    body["spec"]["backoffLimit"] = 2
    await client.ok("POST", JOBS, body)
    job = await finished_job(client, "retryable")
    assert condition(job, "Failed")["reason"] == "BackoffLimitExceeded"
    assert job["status"]["failed"] == 3
    pods = await pods_of(client, "retryable")
    assert len(pods) == 3
    assert {main_state(p)["terminated"]["exitCode"] for p in pods} == {21}


async def test_ignore_rule_does_not_count(
    kubelet: LocalKubelet, client: Client, tmp_path: Path
) -> None:
    marker = tmp_path / "second-attempt"
    code = first_attempt(str(marker), "sys.exit(42)", "sys.exit(0)")
    policy = {"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [42]}}]}
    await client.ok("POST", JOBS, job_body("ignored", python(code), podFailurePolicy=policy))
    job = await finished_job(client, "ignored")
    assert condition(job, "Complete")
    assert "failed" not in job["status"]
    assert len(await pods_of(client, "ignored")) == 2


async def test_init_container_fills_an_empty_dir_the_main_container_reads(
    kubelet: LocalKubelet, client: Client
) -> None:
    init = python(
        "import os; os.makedirs('/shared/sub', exist_ok=True); "
        "open('/shared/sub/data.txt', 'w').write('from-init')",
        name="prepare",
        volumeMounts=[{"name": "shared", "mountPath": "/shared"}],
    )
    main = python(
        "import sys; msg = open(sys.argv[1]).read(); "
        "open('/dev/termination-log', 'w').write(msg + ':' + open('data.txt').read())",
        volumeMounts=[{"name": "shared", "mountPath": "/shared"}],
        args=["/shared/sub/data.txt"],
        workingDir="/shared/sub",
    )
    body = job_body("init", main, init=[init], volumes=[{"name": "shared", "emptyDir": {}}])
    await client.ok("POST", JOBS, body)
    job = await finished_job(client, "init")
    assert condition(job, "Complete"), job["status"]
    [pod] = await pods_of(client, "init")
    [init_status] = pod["status"]["initContainerStatuses"]
    assert init_status["name"] == "prepare"
    assert init_status["state"]["terminated"]["reason"] == "Completed"
    assert main_state(pod)["terminated"]["message"] == "from-init:from-init"
    assert condition(pod, "Initialized")


async def test_failing_init_container_fails_the_pod_without_running_main(
    kubelet: LocalKubelet, client: Client
) -> None:
    body = job_body(
        "badinit", python("print('main ran')"), init=[python("raise SystemExit(3)", name="prep")]
    )
    await client.ok("POST", JOBS, body)
    job = await finished_job(client, "badinit")
    assert condition(job, "Failed")["reason"] == "BackoffLimitExceeded"
    [pod] = await pods_of(client, "badinit")
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert "waiting" in main_state(pod)
    assert [r.container for r in kubelet.runs] == ["prep"]


async def test_env_from_a_secret_waits_for_the_secret(
    kubelet: LocalKubelet, client: Client
) -> None:
    main = python(
        "import os; open('/dev/termination-log', 'w').write("
        "os.environ['DATABASE_URL'] + '|' + os.environ['EXTRA'] + '|' + os.environ['POD_NS'] "
        "+ '|' + os.environ['GREETING'])",
        env=[
            {
                "name": "DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": "creds", "key": "url"}},
            },
            {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "GREETING", "value": "hi $(POD_NS)"},
        ],
        envFrom=[{"secretRef": {"name": "creds"}}],
    )
    await client.ok("POST", JOBS, job_body("secret", main))

    def blocked(pod: dict) -> bool:
        waiting = main_state(pod).get("waiting") or {}
        return waiting.get("reason") == "CreateContainerConfigError"

    pod = await pod_where(client, "secret", blocked)
    assert pod["status"]["phase"] == "Pending"
    assert main_state(pod)["waiting"]["message"] == 'secret "creds" not found'
    assert kubelet.runs == []
    job = await get_job(client, "secret")
    assert job["status"]["active"] == 1 and not condition(job, "Failed")

    # A Secret without the key: still blocked, now on the key.
    await client.ok("POST", SECRETS, {"metadata": {"name": "creds"}, "stringData": {"EXTRA": "x"}})

    def missing_key(pod: dict) -> bool:
        return "couldn't find key url" in (main_state(pod).get("waiting") or {}).get("message", "")

    await pod_where(client, "secret", missing_key)
    assert kubelet.runs == []
    await client.ok(
        "PATCH",
        f"{SECRETS}/creds",
        {"stringData": {"url": "postgresql://u:p@h/db"}},
        content_type="application/merge-patch+json",
    )
    job = await finished_job(client, "secret")
    assert condition(job, "Complete")
    [pod] = await pods_of(client, "secret")
    message = main_state(pod)["terminated"]["message"]
    assert message == "postgresql://u:p@h/db|x|default|hi default"
    assert len(kubelet.runs) == 1


async def test_active_deadline_kills_the_process(kubelet: LocalKubelet, client: Client) -> None:
    body = job_body("slow", python("import time; time.sleep(120)"), activeDeadlineSeconds=1)
    started = time.monotonic()
    await client.ok("POST", JOBS, body)
    job = await finished_job(client, "slow")
    assert time.monotonic() - started < 15
    failed = condition(job, "Failed")
    assert failed["reason"] == "DeadlineExceeded"
    assert failed["message"] == "Job was active longer than specified deadline"
    [run] = kubelet.runs
    assert run.exit_code == 143 and run.pid is not None and not pid_alive(run.pid)
    [pod] = await pods_of(client, "slow")
    assert pod["status"]["phase"] == "Failed" and pod["status"]["reason"] == "DeadlineExceeded"
    assert main_state(pod)["terminated"]["exitCode"] == 143


async def test_suspended_job_starts_when_resumed(kubelet: LocalKubelet, client: Client) -> None:
    await client.ok("POST", JOBS, job_body("later", python("print(1)"), suspend=True))

    async def suspended() -> dict | None:
        job = await get_job(client, "later")
        return job if condition(job, "Suspended") else None

    job = await eventually(suspended)
    assert condition(job, "Suspended")["reason"] == "JobSuspended"
    assert "startTime" not in job["status"]
    assert await pods_of(client, "later") == []
    await client.ok(
        "PATCH",
        f"{JOBS}/later",
        {"spec": {"suspend": False}},
        content_type="application/merge-patch+json",
    )
    job = await finished_job(client, "later")
    assert condition(job, "Complete")
    resumed = next(c for c in job["status"]["conditions"] if c["type"] == "Suspended")
    assert (resumed["status"], resumed["reason"]) == ("False", "JobResumed")
    assert len(await pods_of(client, "later")) == 1


async def test_suspending_a_running_job_kills_and_deletes_its_pod(
    kubelet: LocalKubelet, client: Client
) -> None:
    await client.ok("POST", JOBS, job_body("pause", python("import time; time.sleep(120)")))
    await pod_where(client, "pause", lambda p: p["status"]["phase"] == "Running")
    await client.ok(
        "PATCH",
        f"{JOBS}/pause",
        {"spec": {"suspend": True}},
        content_type="application/merge-patch+json",
    )

    async def suspended_and_empty() -> bool:
        job = await get_job(client, "pause")
        return bool(condition(job, "Suspended")) and not await pods_of(client, "pause")

    await eventually(suspended_and_empty)
    [run] = kubelet.runs
    assert run.pid is not None and not pid_alive(run.pid)


@pytest.mark.parametrize("propagation", ["Background", None])
async def test_deleting_the_job_kills_the_process(
    kubelet: LocalKubelet, client: Client, propagation: str | None
) -> None:
    await client.ok("POST", JOBS, job_body("doomed", python("import time; time.sleep(120)")))
    pod = await pod_where(client, "doomed", lambda p: p["status"]["phase"] == "Running")
    [run] = kubelet.runs
    assert run.pid is not None and pid_alive(run.pid)
    params = {"propagationPolicy": propagation} if propagation else {}
    status, _ = await client.delete(f"{JOBS}/doomed", **params)
    assert status == 200
    await eventually(lambda: _async(not pid_alive(run.pid)), what="the process to end")
    pod_path = f"{PODS}/{pod['metadata']['name']}"
    if propagation == "Background":  # the garbage collector deletes the pod
        await eventually(lambda: _gone(client, pod_path), what="the pod to be collected")
    else:  # orphaned, as the apiserver's default for Jobs does: the pod stays, Failed

        async def failed() -> bool:
            code, body = await client.get(pod_path)
            return code == 200 and body["status"]["phase"] == "Failed"

        await eventually(failed, what="the orphaned pod to be marked Failed")
    code, _ = await client.get(f"{JOBS}/doomed")
    assert code == 404


async def test_deleting_the_pod_kills_it_and_counts_a_failure(
    kubelet: LocalKubelet, client: Client, tmp_path: Path
) -> None:
    marker = tmp_path / "attempt"
    code = first_attempt(str(marker), "time.sleep(120)", "None")
    body = job_body("victim", python(code))
    body["spec"]["backoffLimit"] = 1
    await client.ok("POST", JOBS, body)
    pod = await pod_where(client, "victim", lambda p: p["status"]["phase"] == "Running")
    pid = kubelet.runs[0].pid
    assert pid is not None

    async def first_attempt_started() -> bool:
        # Running means the process exists, not that Python has reached the marker yet: killed
        # before that, the replacement would take the first attempt's 120 s path too.
        return marker.exists()

    await eventually(first_attempt_started, what="the first attempt's marker")
    status, _ = await client.delete(f"{PODS}/{pod['metadata']['name']}")
    assert status == 200
    job = await finished_job(client, "victim")
    assert condition(job, "Complete")
    assert job["status"]["failed"] == 1 and not pid_alive(pid)
    assert len(await pods_of(client, "victim")) == 1  # the replacement


async def test_unmapped_image_fails_the_pod(kubelet: LocalKubelet, client: Client) -> None:
    container = {"name": "main", "image": "nowhere/unknown:1", "command": ["true"]}
    await client.ok("POST", JOBS, job_body("noimage", container))
    job = await finished_job(client, "noimage")
    assert condition(job, "Failed")["reason"] == "BackoffLimitExceeded"
    [pod] = await pods_of(client, "noimage")
    assert pod["status"]["phase"] == "Failed" and pod["status"]["reason"] == "ErrImagePull"
    assert main_state(pod)["terminated"]["reason"] == "ErrImagePull"
    assert kubelet.runs == []


async def test_hold_keeps_the_pod_pending_until_released(
    kubelet: LocalKubelet, client: Client
) -> None:
    gate = kubelet.hold("gated")
    exit_gate = kubelet.hold("gated", at="exit")
    await client.ok("POST", JOBS, job_body("gated", python("print('ran')")))

    async def active() -> dict | None:
        job = await get_job(client, "gated")
        return job if (job.get("status") or {}).get("active") == 1 else None

    await eventually(active)
    [pod] = await pods_of(client, "gated")
    assert pod["status"]["phase"] == "Pending" and kubelet.runs == []
    gate.set()
    # At the exit hold the process has ended but the pod still reports it running.
    await eventually(lambda: _async(bool(kubelet.runs) and kubelet.runs[0].exit_code == 0))
    pod = await pod_where(client, "gated", lambda p: p["status"]["phase"] == "Running")
    assert "running" in main_state(pod)
    assert (await get_job(client, "gated"))["status"]["ready"] == 1
    exit_gate.set()
    job = await finished_job(client, "gated")
    assert condition(job, "Complete")


async def test_kubelet_restart_picks_up_jobs_created_while_down(
    api: ApiServer, client: Client, kubelet: LocalKubelet, images: dict, tmp_path: Path
) -> None:
    await kubelet.stop()
    await client.ok("POST", JOBS, job_body("queued", python("print(1)")))
    async with LocalKubelet(api.base_url, images=images, workdir=tmp_path / "k2"):
        job = await finished_job(client, "queued")
    assert condition(job, "Complete")


async def _async(value: bool) -> bool:
    return value


async def _gone(client: Client, path: str) -> bool:
    code, _ = await client.get(path)
    return code == 404


def test_no_process_left_behind() -> None:
    # Sanity: the test process has no stray children of earlier tests (zombies aside).
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    if children.exists():
        alive = [pid for pid in children.read_text().split() if pid_alive(int(pid))]
        assert alive == []


async def test_simulated_containers_complete_without_processes(
    api: ApiServer, client: Client, tmp_path: Path
) -> None:
    from alembic_operator.emulation.kubelet import SimulatedResult  # noqa: PLC0415

    seen = []

    def simulate(container: object) -> SimulatedResult:
        seen.append(container)
        return SimulatedResult(exit_code=0, message='{"reason": "Applied"}', log="simulated\n")

    async with LocalKubelet(
        api.base_url,
        images={},
        simulate=simulate,
        log_sink=api.set_pod_log,
        workdir=tmp_path / "sim",
        complete_after=0.5,
    ) as local:
        await client.ok("POST", JOBS, job_body("instant", python("raise SystemExit(1)")))
        job = await finished_job(client, "instant")
    assert condition(job, "Complete") and len(seen) == 1 and local.runs[0].pid is None
    created = job["metadata"]["creationTimestamp"]
    assert job["status"]["completionTime"] >= created
    [pod] = await pods_of(client, "instant")
    assert main_state(pod)["terminated"]["message"] == '{"reason": "Applied"}'
    _, log = await client.get(f"{PODS}/{pod['metadata']['name']}/log")
    assert log == "simulated\n"


async def test_ttl_after_finished_deletes_the_job_and_its_pods(
    kubelet: LocalKubelet, client: Client
) -> None:
    name = "t" * 63  # the longest Job name: pod names stay within 63 characters
    release = kubelet.hold(name, at="exit")
    await client.ok("POST", JOBS, job_body(name, python("print(1)"), ttlSecondsAfterFinished=0))
    pod = await pod_where(client, name, lambda p: p["status"]["phase"] == "Running")
    assert len(pod["metadata"]["name"]) <= 63
    release.set()
    await eventually(lambda: _gone(client, f"{JOBS}/{name}"), what="the Job to expire")
    await eventually(lambda: _gone(client, f"{PODS}/{pod['metadata']['name']}"))


async def test_a_namespaced_kubelet_ignores_other_namespaces(
    api: ApiServer, client: Client, images: dict, tmp_path: Path
) -> None:
    await client.ok("POST", "/api/v1/namespaces", {"metadata": {"name": "team-a"}})
    await client.ok("POST", JOBS, job_body("elsewhere", python("print(1)")))
    team_jobs = "/apis/batch/v1/namespaces/team-a/jobs"
    await client.ok("POST", team_jobs, job_body("mine", python("print(1)")))
    async with LocalKubelet(api.base_url, images=images, namespace="team-a",
                            workdir=tmp_path / "ns") as local:  # fmt: skip

        async def done() -> bool:
            _, job = await client.get(f"{team_jobs}/mine")
            return bool(condition(job, "Complete"))

        await eventually(done)
    assert [r.namespace for r in local.runs] == ["team-a"]
    assert await pods_of(client, "elsewhere") == []
    assert not (await get_job(client, "elsewhere")).get("status", {}).get("conditions")
