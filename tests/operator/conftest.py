"""Fixtures: this test's namespace on the real control plane, its kubelet, and the operator."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cluster.client import Client
from tests.cluster.controlplane import ControlPlane
from tests.cluster.faults import FaultProxy
from tests.cluster.fixtures import OperatorIdentity
from tests.cluster.kubelet import TestKubelet
from tests.operator.harness import OPERATOR_IMAGE, Cluster


@pytest.fixture
async def cluster(
    control_plane: ControlPlane,
    operator_identity: OperatorIdentity,
    namespace: str,
    kubelet: TestKubelet,
    kube: Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Cluster]:
    """The operator running as the chart's ServiceAccount, watching this test's namespace."""
    proxy = await FaultProxy(control_plane.server, control_plane.ca).start()
    kubeconfig = operator_identity.kubeconfig(
        control_plane, tmp_path / "kubeconfig", namespace, server=proxy.url
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("ALEMBIC_OPERATOR_RUNNER_IMAGE", OPERATOR_IMAGE)
    if "ALEMBIC_OPERATOR_METRICS_PORT" not in os.environ:  # tests/metrics picks a free one
        monkeypatch.setenv("ALEMBIC_OPERATOR_METRICS_PORT", "0")
    cluster = Cluster(
        control_plane=control_plane,
        ns=namespace,
        kubelet=kubelet,
        client=kube,
        kubeconfig=kubeconfig,
        proxy=proxy,
    )
    try:
        await cluster.start_operator()
        yield cluster
    finally:
        if cluster.operator is not None:
            output = await cluster.stop_operator()
            assert "Traceback" not in output, output
            assert " 403" not in output and "Forbidden" not in output, output
        await proxy.stop()
        refused = [c for c in proxy.calls if c.status == 403 and not c.injected]
        assert not refused, f"the chart's RBAC refused the operator: {refused}"
