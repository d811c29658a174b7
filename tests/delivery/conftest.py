"""Value sets of the chart, rendered once per session with the real helm."""

from __future__ import annotations

from typing import Any

import pytest

from tests.delivery.tools import helm_template

# name -> values: the configurations platform teams install (issue 6).
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watchNamespaces": ["a", "b"]},
    "cluster-wide": {"clusterWide": True, "peering": {"enabled": True}},
    "webhook": {
        "watchNamespaces": ["shop"],
        "webhook": {"enabled": True, "certManager": {"enabled": True}},
    },
    "webhook-self-signed": {
        "clusterWide": True,
        "webhook": {"enabled": True, "selfSigned": {"enabled": True}, "failurePolicy": "Fail"},
    },
    "webhook-existing-secret": {
        "webhook": {"enabled": True, "existingSecret": "my-tls", "caBundle": "Y2E="},
    },
    "monitoring": {
        "clusterWide": True,
        "image": {"digest": "sha256:" + "ab" * 32},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "prometheusRule": {"enabled": True},
        "grafanaDashboard": {"enabled": True, "namespace": "monitoring"},
    },
}


@pytest.fixture(scope="session")
def rendered() -> dict[str, str]:
    """helm template's output for every value set (the renders are shared by many tests)."""
    out = {}
    for name, values in VALUE_SETS.items():
        result = helm_template(values)
        assert result.returncode == 0, f"{name}: {result.stderr}"
        out[name] = result.stdout
    return out
