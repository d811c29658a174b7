"""The Pod Security Standards' "restricted" profile (which includes "baseline"), as checks.

Written from the standard's field list (kubernetes.io/docs/concepts/security/pod-security-standards,
policy version 1.30+). ``violations(pod_spec)`` returns one message per broken control; an empty
list means the pod would be admitted by Pod Security Admission at ``enforce: restricted``.
The chart adds one rule of its own, checked separately: a read-only root filesystem.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# Baseline: capabilities beyond the runtime's defaults are refused; restricted allows only this.
RESTRICTED_ADDABLE_CAPABILITIES = {"NET_BIND_SERVICE"}
# Restricted: the only volume types allowed.
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
# Baseline: sysctls in the "safe" set.
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
APPARMOR_TYPES = {"RuntimeDefault", "Localhost"}
SECCOMP_TYPES = {"RuntimeDefault", "Localhost"}


def containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(field) or []:
            yield f"{field}[{container.get('name')}]", container


def violations(spec: dict[str, Any]) -> list[str]:
    found: list[str] = []
    pod_sc = spec.get("securityContext") or {}

    # --- baseline ------------------------------------------------------------------------------
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            found.append(f"{field} must be unset or false")
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        found.append("securityContext.windowsOptions.hostProcess must not be true")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"sysctl {sysctl.get('name')} is not in the safe set")
    _check_selinux("securityContext", pod_sc, found)
    _check_apparmor("securityContext", pod_sc, found)
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if "hostPath" in kinds:
            found.append(f"volume {volume.get('name')}: hostPath is not allowed")
        # --- restricted: volume types
        for kind in kinds - RESTRICTED_VOLUME_TYPES:
            found.append(f"volume {volume.get('name')}: type {kind} is not allowed")

    # --- restricted: pod level ----------------------------------------------------------------
    pod_non_root = pod_sc.get("runAsNonRoot")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_sc.get("runAsUser") == 0:
        found.append("securityContext.runAsUser must not be 0")
    if pod_seccomp is not None and pod_seccomp not in SECCOMP_TYPES:
        found.append(f"securityContext.seccompProfile.type {pod_seccomp} is not allowed")

    for where, container in containers(spec):
        sc = container.get("securityContext") or {}
        # baseline
        if sc.get("privileged"):
            found.append(f"{where}: privileged must be unset or false")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            found.append(f"{where}: windowsOptions.hostProcess must not be true")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                found.append(f"{where}: hostPort must be unset or 0")
        if sc.get("procMount", "Default") != "Default":
            found.append(f"{where}: procMount must be Default")
        _check_selinux(f"{where}.securityContext", sc, found)
        _check_apparmor(f"{where}.securityContext", sc, found)
        # restricted
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{where}: allowPrivilegeEscalation must be false")
        non_root = sc.get("runAsNonRoot", pod_non_root)
        if non_root is not True:
            found.append(f"{where}: runAsNonRoot must be true (pod or container)")
        if sc.get("runAsUser") == 0:
            found.append(f"{where}: runAsUser must not be 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in SECCOMP_TYPES:
            found.append(f"{where}: seccompProfile.type must be RuntimeDefault or Localhost")
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"{where}: capabilities.drop must include ALL")
        for added in set(capabilities.get("add") or []) - RESTRICTED_ADDABLE_CAPABILITIES:
            found.append(f"{where}: capability {added} may not be added")
    return found


def _check_selinux(where: str, sc: dict[str, Any], found: list[str]) -> None:
    options = sc.get("seLinuxOptions") or {}
    if options.get("type", "") not in SELINUX_TYPES:
        found.append(f"{where}.seLinuxOptions.type {options.get('type')} is not allowed")
    for field in ("user", "role"):
        if options.get(field):
            found.append(f"{where}.seLinuxOptions.{field} must be unset")


def _check_apparmor(where: str, sc: dict[str, Any], found: list[str]) -> None:
    profile = (sc.get("appArmorProfile") or {}).get("type")
    if profile is not None and profile not in APPARMOR_TYPES:
        found.append(f"{where}.appArmorProfile.type {profile} is not allowed")


def pod_specs(documents: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every pod a rendered set of manifests would run."""
    for doc in documents:
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
        if kind == "Pod":
            yield f"Pod/{name}", doc["spec"]
        elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
            yield f"{kind}/{name}", doc["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield f"{kind}/{name}", doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
