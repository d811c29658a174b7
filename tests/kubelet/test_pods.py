"""The pure parts of the local kubelet: path rewriting, cwd rule, argv, env, podFailurePolicy."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from alembic_operator.emulation.kubelet import evaluate_pod_failure_policy
from alembic_operator.emulation.pods import (
    ConfigError,
    ImageSpec,
    PathRewriter,
    StartError,
    build_argv,
    expand_references,
    resolve_env,
    working_directory,
)


def test_rewriter_replaces_whole_path_components_longest_first() -> None:
    rewriter = PathRewriter(
        {"/tmp": "/L/tmp", "/tmp/cache": "/L/cache", "/dev/termination-log": "/L/t"}
    )
    assert rewriter.rewrite("/tmp") == "/L/tmp"
    assert rewriter.rewrite("--dir=/tmp/x") == "--dir=/L/tmp/x"
    assert rewriter.rewrite("/tmp/cache/a /tmp/cachex") == "/L/cache/a /L/tmp/cachex"
    assert rewriter.rewrite("/tmpfs /var/tmp x/tmp") == "/tmpfs /var/tmp x/tmp"
    assert rewriter.rewrite("/dev/termination-log") == "/L/t"
    assert rewriter.local_dir("/tmp/cache/z") == Path("/L/cache/z")
    assert rewriter.local_dir("/etc") is None


def test_working_directory_rule(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "app").mkdir()
    image = ImageSpec(root=tmp_path)
    rewriter = PathRewriter({"/work": str(tmp_path / "db")})
    cwd = lambda wd: working_directory({"workingDir": wd} if wd else {}, image, rewriter)  # noqa: E731
    assert cwd(None) == tmp_path
    assert cwd("/") == tmp_path
    assert cwd("/app") == tmp_path / "app"
    assert cwd("/srv/db") == tmp_path / "db"  # the longest existing suffix
    assert cwd("/srv/nothing") == tmp_path
    assert cwd("/work") == tmp_path / "db"  # under a mount
    assert cwd("db") == tmp_path / "db"
    with pytest.raises(StartError):
        cwd("missing")
    assert working_directory({}, ImageSpec(root=tmp_path, workdir=tmp_path / "app"), rewriter) == (
        tmp_path / "app"
    )


def test_argv_resolution(tmp_path: Path) -> None:
    image = ImageSpec(root=tmp_path, python="/opt/py/bin/python3", python_aliases=("py",))
    env = {"PATH": "/usr/bin:/bin", "DIR": "/data"}
    rewriter = PathRewriter({"/data": "/L"})
    argv = lambda c: build_argv(c, image, env, rewriter)  # noqa: E731
    assert argv({"command": ["python", "-c", "1"]}) == ["/opt/py/bin/python3", "-c", "1"]
    assert argv({"command": ["/usr/local/bin/python3.11"], "args": ["$(DIR)/x"]}) == [
        "/opt/py/bin/python3",
        "/L/x",
    ]
    assert argv({"command": ["py"]}) == ["/opt/py/bin/python3"]
    assert argv({"command": ["alembic-operator", "write-runner", "/data"]}) == [
        sys.executable,
        "-m",
        "alembic_operator",
        "write-runner",
        "/L",
    ]
    assert argv({"command": ["sh", "-c", "$$(DIR)"]})[2] == "$(DIR)"
    with pytest.raises(StartError, match="not found"):
        argv({"command": ["no-such-program-here"]})
    with pytest.raises(StartError, match="entrypoint"):
        argv({"args": ["x"]})
    assert build_argv(
        {"args": ["a"]}, ImageSpec(root=tmp_path, entrypoint=("/bin/echo",)), env, rewriter
    ) == ["/bin/echo", "a"]


def test_expand_references_leaves_unknown_names() -> None:
    assert expand_references("$(A)-$(B)-$$(A)", {"A": "1"}) == "1-$(B)-$(A)"


async def test_resolve_env_order_and_errors() -> None:
    store: dict[tuple[str, str], dict[str, str]] = {
        ("Secret", "s"): {"K": "secret", "X": "s"},
        ("ConfigMap", "c"): {"X": "cm"},
    }

    async def lookup(kind: str, namespace: str, name: str) -> dict[str, str] | None:
        return store.get((kind, name))

    pod: dict[str, Any] = {"metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b"}}}
    container = {
        "envFrom": [{"secretRef": {"name": "s"}}, {"configMapRef": {"name": "c"}, "prefix": "CM_"}],
        "env": [
            {"name": "X", "value": "own $(K)"},
            {"name": "LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['a']"}}},
            {
                "name": "OPT",
                "valueFrom": {"secretKeyRef": {"name": "none", "key": "k", "optional": True}},
            },
        ],
    }
    env = await resolve_env(container, pod, lookup)
    assert env == {"K": "secret", "X": "own secret", "CM_X": "cm", "LABEL": "b"}
    with pytest.raises(ConfigError, match='configmap "gone" not found'):
        await resolve_env({"envFrom": [{"configMapRef": {"name": "gone"}}]}, pod, lookup)
    with pytest.raises(ConfigError, match="couldn't find key nope in Secret ns/s"):
        await resolve_env(
            {"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope"}}}]},
            pod,
            lookup,
        )


def _pod(*containers: tuple[str, int], init: tuple[str, int] | None = None) -> dict[str, Any]:
    def status(name: str, code: int) -> dict[str, Any]:
        return {"name": name, "state": {"terminated": {"exitCode": code}}}

    body: dict[str, Any] = {
        "metadata": {"name": "p", "namespace": "ns"},
        "status": {
            "containerStatuses": [status(*c) for c in containers],
            "conditions": [{"type": "DisruptionTarget", "status": "True"}],
        },
    }
    if init:
        body["status"]["initContainerStatuses"] = [status(*init)]
    return body


def test_pod_failure_policy_rules() -> None:
    policy = {
        "rules": [
            {
                "action": "Ignore",
                "onExitCodes": {"containerName": "side", "operator": "In", "values": [1]},
            },
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [10, 11]}},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [10, 11, 20]}},
        ]
    }
    action, message = evaluate_pod_failure_policy(policy, _pod(("main", 11)))
    assert action == "FailJob"
    assert (
        message
        == "Container main for pod ns/p failed with exit code 11 matching FailJob rule at index 1"
    )
    assert evaluate_pod_failure_policy(policy, _pod(("side", 1)))[0] == "Ignore"
    assert evaluate_pod_failure_policy(policy, _pod(("main", 1)))[0] == "Count"
    assert evaluate_pod_failure_policy(policy, _pod(("main", 20))) == ("Count", None)  # no match
    assert evaluate_pod_failure_policy(policy, _pod(("main", 0), init=("prep", 10)))[0] == "FailJob"
    conditions = {
        "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
    }
    assert evaluate_pod_failure_policy(conditions, _pod(("main", 0)))[0] == "Ignore"
    assert evaluate_pod_failure_policy(None, _pod(("main", 3))) == ("Count", None)
