"""The Job controller's ``podFailurePolicy`` evaluation: which action a failed pod triggers.

Role: pure logic used by :mod:`.jobcontrol` (and tested directly) to map a failed pod's status
to ``FailJob``, ``Ignore``, ``Count``, ... with the message the Job controller writes.

What it must not do: talk to the apiserver, mutate the pod or the policy, or decide what the
action *does* to the Job (backoffLimit, conditions): that is :mod:`.jobcontrol`'s business.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["evaluate_pod_failure_policy"]


def evaluate_pod_failure_policy(
    policy: Mapping[str, Any] | None, pod: Mapping[str, Any]
) -> tuple[str, str | None]:
    """The action (``FailJob``, ``Ignore``, ``Count``, ...) for a failed pod, and its message.

    As the Job controller does: rules in order, the first match wins; ``onExitCodes`` looks at
    terminated containers (regular ones first, then init containers) with a non-zero exit code,
    filtered by ``containerName``; ``onPodConditions`` at the pod's conditions. No match: Count.
    """
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    where = f"{meta.get('namespace')}/{meta.get('name')}"
    for index, rule in enumerate((policy or {}).get("rules") or []):
        action = str(rule.get("action"))
        codes = rule.get("onExitCodes")
        if codes is not None:
            values = set(codes.get("values") or [])
            for kind in ("containerStatuses", "initContainerStatuses"):
                for container in status.get(kind) or []:
                    terminated = (container.get("state") or {}).get("terminated")
                    if not terminated or terminated.get("exitCode", 0) == 0:
                        continue
                    if codes.get("containerName") not in (None, container.get("name")):
                        continue
                    code = int(terminated["exitCode"])
                    if (code in values) == (codes.get("operator") == "In"):
                        return action, (
                            f"Container {container.get('name')} for pod {where} failed with exit "
                            f"code {code} matching {action} rule at index {index}"
                        )
        for pattern in rule.get("onPodConditions") or []:
            for condition in status.get("conditions") or []:
                if condition.get("type") == pattern.get("type") and condition.get(
                    "status"
                ) == pattern.get("status", "True"):
                    return action, (
                        f"Pod {where} has condition {condition.get('type')} matching {action} "
                        f"rule at index {index}"
                    )
    return "Count", None
