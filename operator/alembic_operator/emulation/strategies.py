"""Write strategies of the built-ins: defaults, status isolation, generation, lifecycle fields.

These mirror the apiserver's ``PrepareForCreate``/``PrepareForUpdate`` and the API defaulting:

- status: dropped on create for resources with a status subresource (Pods start ``Pending``,
  Namespaces ``Active``, CRDs get accepted names and ``Established``); kept from the old object
  on main-endpoint writes; ``/status`` writes take only ``status`` from the request;
- ``generation`` changes when anything but metadata and (where a subresource) status changes;
- defaults of the built-ins an operator creates: pod specs (restartPolicy, dnsPolicy,
  terminationMessagePath/Policy, imagePullPolicy, ...), Jobs (parallelism, completions,
  backoffLimit 6, completionMode, suspend, podReplacementPolicy, the generated
  ``controller-uid`` selector and ``job-name`` labels), Deployments (replicas, strategy, ...),
  Secrets (``stringData`` folded into base64 ``data``, type Opaque), Namespaces (``kubernetes``
  finalizer, the ``kubernetes.io/metadata.name`` label).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from alembic_operator.emulation.catalog import ResourceType
from alembic_operator.emulation.errors import bad_request
from alembic_operator.emulation.jsontree import clone

JOB_LABELS = ("batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name")
LEGACY_JOB_LABELS = ("controller-uid", "job-name")
POD_TEMPLATE_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "pods"): ("spec",),
    ("batch", "jobs"): ("spec", "template", "spec"),
    ("batch", "cronjobs"): ("spec", "jobTemplate", "spec", "template", "spec"),
    ("apps", "deployments"): ("spec", "template", "spec"),
    ("apps", "replicasets"): ("spec", "template", "spec"),
    ("apps", "statefulsets"): ("spec", "template", "spec"),
    ("apps", "daemonsets"): ("spec", "template", "spec"),
}


def _pull_policy(image: str) -> str:
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def default_pod_spec(spec: dict[str, Any], *, restart_policy: str | None = "Always") -> None:
    """Apply the pod spec defaults the apiserver applies (in place)."""
    if restart_policy is not None:
        spec.setdefault("restartPolicy", restart_policy)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if not isinstance(container, dict):
            continue
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        if isinstance(container.get("image"), str):
            container.setdefault("imagePullPolicy", _pull_policy(container["image"]))
        for port in container.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


def _dig(obj: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: Any = obj
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _default_job_spec(spec: dict[str, Any]) -> None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("manualSelector", None)
    if spec["manualSelector"] is None:
        del spec["manualSelector"]
    spec.setdefault(
        "podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"
    )


def apply_defaults(rtype: ResourceType, obj: dict[str, Any]) -> None:
    """Defaults applied on every write (the apiserver defaults on decoding), in place."""
    key = rtype.storage_key
    template_path = POD_TEMPLATE_PATHS.get(key)
    if template_path is not None and (pod_spec := _dig(obj, template_path)) is not None:
        default_pod_spec(
            pod_spec, restart_policy=None if key[1] in {"jobs", "cronjobs"} else "Always"
        )
    spec = obj.get("spec")
    if key == ("batch", "jobs") and isinstance(spec, dict):
        _default_job_spec(spec)
        template_labels = (spec.get("template") or {}).get("metadata", {}).get("labels")
        if template_labels and not (obj.get("metadata") or {}).get("labels"):
            obj.setdefault("metadata", {})["labels"] = dict(template_labels)
    elif key == ("apps", "deployments") and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy.setdefault("type", "RollingUpdate")
            strategy.setdefault("rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})
    elif key == ("", "secrets"):
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        data = obj.setdefault("data", {}) if string_data else obj.get("data") or {}
        for name, value in string_data.items():
            data[name] = base64.b64encode(str(value).encode()).decode()
        for name, value in data.items():
            try:
                base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise bad_request(f"illegal base64 data in Secret key {name!r}: {exc}") from exc


def prepare_for_create(rtype: ResourceType, obj: dict[str, Any], uid: str) -> None:
    """The create strategy: reset status, generate Job selectors, lifecycle fields (in place)."""
    key = rtype.storage_key
    meta = obj["metadata"]
    if key == ("", "pods"):
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}
    elif key == ("", "namespaces"):
        obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]
        obj["status"] = {"phase": "Active"}
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
    elif (
        rtype.has_status
        and not rtype.is_custom
        and key != ("apiextensions.k8s.io", "customresourcedefinitions")
    ):
        obj["status"] = {}
    elif rtype.has_status:
        obj.pop("status", None)
    spec = obj.get("spec")
    if key == ("batch", "jobs") and isinstance(spec, dict) and not spec.get("manualSelector"):
        spec["selector"] = {"matchLabels": {JOB_LABELS[0]: uid}}
        template_meta = spec.setdefault("template", {}).setdefault("metadata", {})
        labels = template_meta.setdefault("labels", {})
        for uid_label, name_label in (JOB_LABELS, LEGACY_JOB_LABELS):
            labels[uid_label] = uid
            labels[name_label] = meta["name"]


def prepare_for_update(
    rtype: ResourceType, new: dict[str, Any], old: dict[str, Any], subresource: str | None
) -> dict[str, Any]:
    """The update strategy: isolate status and the main body; returns the object to store."""
    if subresource == "status":  # a copy of old with a copy of new's status, in old's key order
        result = {
            k: None if k == "status" else clone(v)
            for k, v in old.items()
            if k != "status" or "status" in new
        }
        if "status" in new:
            result["status"] = clone(new["status"])
        return result
    if rtype.has_status:
        if "status" in old:
            new["status"] = clone(old["status"])
        else:
            new.pop("status", None)
    return new


def generation_changed(rtype: ResourceType, new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Whether a write changes what ``generation`` counts (all but metadata and status).

    Deployments also count their annotations (the apiserver copies them to ReplicaSets).
    """
    skipped = {"metadata", "status"} if rtype.has_status else {"metadata"}
    if rtype.storage_key == ("apps", "deployments") and new["metadata"].get("annotations") != old[
        "metadata"
    ].get("annotations"):
        return True
    return {k: v for k, v in new.items() if k not in skipped} != {
        k: v for k, v in old.items() if k not in skipped
    }


def qos_class(spec: dict[str, Any]) -> str:
    """A pod's QoS class: Guaranteed, Burstable or BestEffort (from requests and limits)."""
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    resources = [c.get("resources") or {} for c in containers if isinstance(c, dict)]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = (
            r.get("limits") or {},
            {**(r.get("limits") or {}), **(r.get("requests") or {})},
        )
        if not {"cpu", "memory"} <= limits.keys() or any(
            requests[k] != limits[k] for k in ("cpu", "memory")
        ):
            return "Burstable"
    return "Guaranteed"


def crd_status(crd: dict[str, Any], now: str) -> dict[str, Any]:
    """The status the apiextensions controllers give an accepted CRD (Established at once)."""
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind')}List")
    storage = [v.get("name") for v in spec.get("versions") or [] if v.get("storage")]
    conditions = [
        {
            "type": kind,
            "status": "True",
            "reason": reason,
            "message": message,
            "lastTransitionTime": now,
        }
        for kind, reason, message in (
            ("NamesAccepted", "NoConflicts", "no conflicts found"),
            ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        )
    ]
    return {"acceptedNames": names, "conditions": conditions, "storedVersions": storage}
