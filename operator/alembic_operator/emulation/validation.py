"""Kind-specific validation of the built-ins an operator writes (422 Invalid on failure).

Jobs: a pod template with containers and ``restartPolicy`` OnFailure/Never, ``job-name`` labels
of at most 63 characters (so a Job name longer than 63 characters is refused), non-negative
``backoffLimit``/``ttlSecondsAfterFinished``, positive ``activeDeadlineSeconds``,
``podFailurePolicy`` rules (actions, In/NotIn with ordered non-zero values, known container
names, ``restartPolicy: Never``), and an immutable template (unless suspended), selector,
completions, completionMode and podFailurePolicy. Deployments and other workloads: a selector
that matches the template labels and never changes. Pods: containers with names and images.
Secrets and ConfigMaps marked ``immutable``. CRDs: ``metadata.name`` is ``plural.group``.
"""

from __future__ import annotations

import json
from typing import Any

from alembic_operator.emulation.catalog import ResourceType
from alembic_operator.emulation.errors import FieldError
from alembic_operator.emulation.metadata import label_value_errors
from alembic_operator.emulation.selectors import labels_match, selector_from_dict
from alembic_operator.emulation.strategies import JOB_LABELS, LEGACY_JOB_LABELS


def _pod_spec_errors(path: str, spec: Any, *, job: bool) -> list[FieldError]:
    if not isinstance(spec, dict):
        return [FieldError(path, "Required value")]
    errors = []
    containers = spec.get("containers") or []
    if not containers:
        errors.append(FieldError(f"{path}.containers", "Required value"))
    for kind in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(kind) or []):
            if not container.get("name"):
                errors.append(FieldError(f"{path}.{kind}[{i}].name", "Required value"))
            if not container.get("image"):
                errors.append(FieldError(f"{path}.{kind}[{i}].image", "Required value"))
    policy = spec.get("restartPolicy")
    allowed = ("OnFailure", "Never") if job else ("Always", "OnFailure", "Never")
    if policy is None and job:
        detail = "valid values: " + ", ".join(json.dumps(a) for a in allowed)
        errors.append(FieldError(f"{path}.restartPolicy", "Required value", detail))
    elif policy not in allowed:
        detail = "supported values: " + ", ".join(json.dumps(a) for a in allowed)
        errors.append(FieldError(f"{path}.restartPolicy", "Unsupported value", detail, policy))
    return errors


def _pod_failure_policy_errors(spec: dict[str, Any]) -> list[FieldError]:
    policy = spec.get("podFailurePolicy")
    if not policy:
        return []
    errors = []
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    if pod_spec.get("restartPolicy") != "Never":
        errors.append(
            FieldError(
                "spec.template.spec.restartPolicy",
                "Invalid value",
                'only "Never" is supported when podFailurePolicy is specified',
                pod_spec.get("restartPolicy"),
            )
        )
    names = {c.get("name") for k in ("initContainers", "containers") for c in pod_spec.get(k) or []}
    for i, rule in enumerate(policy.get("rules") or []):
        path = f"spec.podFailurePolicy.rules[{i}]"
        if rule.get("action") not in {"FailJob", "FailIndex", "Ignore", "Count"}:
            errors.append(
                FieldError(
                    f"{path}.action",
                    "Unsupported value",
                    'supported values: "Count", "FailIndex", "FailJob", "Ignore"',
                    rule.get("action"),
                )
            )
        codes, conditions = rule.get("onExitCodes"), rule.get("onPodConditions")
        if (codes is None) == (conditions is None):
            errors.append(
                FieldError(
                    path,
                    "Invalid value",
                    "specifying one of onExitCodes and onPodConditions is required",
                    rule,
                )
            )
        if codes is not None:
            if codes.get("operator") not in {"In", "NotIn"}:
                errors.append(
                    FieldError(
                        f"{path}.onExitCodes.operator",
                        "Unsupported value",
                        'supported values: "In", "NotIn"',
                        codes.get("operator"),
                    )
                )
            values = codes.get("values") or []
            if not values:
                errors.append(
                    FieldError(
                        f"{path}.onExitCodes.values",
                        "Invalid value",
                        "at least one value is required",
                        values,
                    )
                )
            for j, value in enumerate(values):
                if j and value <= values[j - 1]:
                    errors.append(
                        FieldError(
                            f"{path}.onExitCodes.values[{j}]",
                            "Invalid value",
                            "must be ordered" if value < values[j - 1] else "duplicate value",
                            value,
                        )
                    )
                if value == 0 and codes.get("operator") == "In":
                    errors.append(
                        FieldError(
                            f"{path}.onExitCodes.values[{j}]",
                            "Invalid value",
                            "must not be 0 for the In operator",
                            value,
                        )
                    )
            if codes.get("containerName") is not None and codes["containerName"] not in names:
                errors.append(
                    FieldError(
                        f"{path}.onExitCodes.containerName",
                        "Invalid value",
                        "must be one of the container or initContainer names in the pod template",
                        codes["containerName"],
                    )
                )
    return errors


def _job_errors(new: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    spec = new.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("spec", "Required value")]
    errors = []
    template = spec.get("template") or {}
    errors.extend(_pod_spec_errors("spec.template.spec", template.get("spec"), job=True))
    labels = (template.get("metadata") or {}).get("labels") or {}
    for label in (*JOB_LABELS, *LEGACY_JOB_LABELS):
        if label.endswith("job-name") and label in labels:
            errors.extend(label_value_errors("spec.template.labels", labels[label]))
    for field_name, minimum in (
        ("backoffLimit", 0),
        ("activeDeadlineSeconds", 1),
        ("ttlSecondsAfterFinished", 0),
    ):
        value = spec.get(field_name)
        if value is not None and (not isinstance(value, int) or value < minimum):
            detail = (
                "must be greater than or equal to 0" if minimum == 0 else "must be greater than 0"
            )
            errors.append(FieldError(f"spec.{field_name}", "Invalid value", detail, value))
    errors.extend(_pod_failure_policy_errors(spec))
    if old is not None:
        old_spec = old.get("spec") or {}
        for field_name in (
            "selector",
            "template",
            "completions",
            "completionMode",
            "podFailurePolicy",
        ):
            if field_name == "template" and old_spec.get("suspend"):
                continue
            if spec.get(field_name) != old_spec.get(field_name):
                errors.append(
                    FieldError(
                        f"spec.{field_name}",
                        "Invalid value",
                        "field is immutable",
                        spec.get(field_name),
                    )
                )
    return errors


def _workload_errors(new: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    spec = new.get("spec") or {}
    errors = []
    selector = spec.get("selector")
    template = spec.get("template") or {}
    if not selector:
        errors.append(FieldError("spec.selector", "Required value"))
    elif not labels_match(selector_from_dict(selector), template):
        labels = (template.get("metadata") or {}).get("labels")
        errors.append(
            FieldError(
                "spec.template.metadata.labels",
                "Invalid value",
                "`selector` does not match template `labels`",
                labels,
            )
        )
    errors.extend(_pod_spec_errors("spec.template.spec", template.get("spec"), job=False))
    if old is not None and selector != (old.get("spec") or {}).get("selector"):
        errors.append(FieldError("spec.selector", "Invalid value", "field is immutable", selector))
    return errors


def builtin_errors(
    rtype: ResourceType, new: dict[str, Any], old: dict[str, Any] | None
) -> list[FieldError]:
    """Kind-specific validation of the built-ins an operator writes."""
    key = rtype.storage_key
    if rtype.is_custom:
        return []
    if key == ("batch", "jobs"):
        return _job_errors(new, old)
    if key in {
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
    }:
        return _workload_errors(new, old)
    if key == ("", "pods"):
        return _pod_spec_errors("spec", new.get("spec"), job=False)
    if key in {("", "secrets"), ("", "configmaps")} and old is not None and old.get("immutable"):
        errors = []
        for field_name in ("data", "binaryData"):
            if new.get(field_name) != old.get(field_name):
                errors.append(
                    FieldError(
                        field_name, "Forbidden", "field is immutable when `immutable` is set"
                    )
                )
        if not new.get("immutable"):
            errors.append(
                FieldError("immutable", "Forbidden", "field is immutable when `immutable` is set")
            )
        return errors
    if key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        spec = new.get("spec") or {}
        expected = f"{(spec.get('names') or {}).get('plural')}.{spec.get('group')}"
        if new["metadata"].get("name") != expected:
            return [
                FieldError(
                    "metadata.name",
                    "Invalid value",
                    'must be spec.names.plural+"."+spec.group',
                    new["metadata"].get("name"),
                )
            ]
        if not spec.get("versions"):
            return [
                FieldError(
                    "spec.versions",
                    "Invalid value",
                    "must have exactly one version marked as storage version",
                    [],
                )
            ]
    return []
