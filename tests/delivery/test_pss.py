"""Every pod the chart renders (operator + helm test) meets the restricted Pod Security Standard."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from tests.delivery.conftest import VALUE_SETS
from tests.delivery.pss import pod_specs, violations


def pods(text: str) -> list[tuple[str, dict[str, Any]]]:
    return list(pod_specs([d for d in yaml.safe_load_all(text) if d]))


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_rendered_pods_are_restricted(rendered: dict[str, str], name: str) -> None:
    found = pods(rendered[name])
    assert {where.split("/")[0] for where, _ in found} == {"Deployment", "Pod"}
    for where, spec in found:
        assert violations(spec) == [], where
        for container in spec["containers"]:
            # The chart's own rule on top of the standard: nothing writes outside the emptyDirs.
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
        assert spec["securityContext"]["runAsUser"] == 65532


def test_only_the_operator_mounts_a_service_account_token(rendered: dict[str, str]) -> None:
    for where, spec in pods(rendered["defaults"]):
        assert spec["automountServiceAccountToken"] is where.startswith("Deployment/")


RESTRICTED = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "c",
            "image": "i",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
        }
    ],
    "volumes": [{"name": "tmp", "emptyDir": {}}],
}


def _set(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    result = copy.deepcopy(spec)
    node: Any = result
    *parents, last = path.split(".")
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return result


# The checker itself, one case per control of the standard: a pod breaking it is reported.
BROKEN = [
    ("hostNetwork", True, "hostNetwork"),
    ("hostPID", True, "hostPID"),
    ("hostIPC", True, "hostIPC"),
    ("securityContext.windowsOptions", {"hostProcess": True}, "hostProcess"),
    ("containers.0.securityContext.privileged", True, "privileged"),
    ("containers.0.securityContext.capabilities.add", ["NET_ADMIN"], "NET_ADMIN"),
    ("volumes", [{"name": "h", "hostPath": {"path": "/"}}], "hostPath"),
    ("volumes", [{"name": "n", "nfs": {"server": "s", "path": "/"}}], "type nfs"),
    ("containers.0.ports", [{"containerPort": 80, "hostPort": 80}], "hostPort"),
    ("containers.0.securityContext.appArmorProfile", {"type": "Unconfined"}, "appArmor"),
    ("securityContext.seLinuxOptions", {"type": "spc_t"}, "seLinuxOptions.type"),
    ("securityContext.seLinuxOptions", {"user": "root"}, "seLinuxOptions.user"),
    ("containers.0.securityContext.procMount", "Unmasked", "procMount"),
    ("securityContext.seccompProfile", {"type": "Unconfined"}, "seccompProfile"),
    ("securityContext.seccompProfile", None, "seccompProfile.type must be"),
    ("securityContext.sysctls", [{"name": "kernel.msgmax", "value": "1"}], "kernel.msgmax"),
    ("containers.0.securityContext.allowPrivilegeEscalation", None, "allowPrivilegeEscalation"),
    ("securityContext.runAsNonRoot", None, "runAsNonRoot"),
    ("containers.0.securityContext.runAsUser", 0, "runAsUser must not be 0"),
    ("containers.0.securityContext.capabilities.drop", ["NET_RAW"], "drop must include ALL"),
]


def test_checker_accepts_a_restricted_pod() -> None:
    assert violations(RESTRICTED) == []
    add = "containers.0.securityContext.capabilities.add"
    allowed = _set(RESTRICTED, add, ["NET_BIND_SERVICE"])
    assert violations(allowed) == []


@pytest.mark.parametrize(
    ("path", "value", "message"), BROKEN, ids=[b[0] + ":" + b[2] for b in BROKEN]
)
def test_checker_reports_each_control(path: str, value: Any, message: str) -> None:
    found = violations(_set(RESTRICTED, path, value))
    assert any(message in item for item in found), found
