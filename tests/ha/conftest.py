"""Fixtures: operator replicas (processes) for this test's namespace, their webhook installed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cluster.client import Client
from tests.cluster.controlplane import ControlPlane
from tests.cluster.faults import FaultProxy
from tests.cluster.fixtures import OPERATOR_NAMESPACE, OperatorIdentity
from tests.cluster.kubelet import TestKubelet
from tests.ha.harness import Balancer, Replicas, install_webhook_configuration, remove_own_objects


@pytest.fixture
async def proxy(control_plane: ControlPlane) -> AsyncIterator[FaultProxy]:
    proxy = await FaultProxy(control_plane.server, control_plane.ca).start()
    try:
        yield proxy
    finally:
        await proxy.stop()


@pytest.fixture
async def replicas(
    control_plane: ControlPlane,
    operator_identity: OperatorIdentity,
    namespace: str,
    kubelet: TestKubelet,
    kube: Client,
    proxy: FaultProxy,
    tmp_path: Path,
) -> AsyncIterator[Replicas]:
    """No replica started yet; the webhook configuration (failurePolicy Fail) selects this
    namespace and reaches the replicas through the balancer. Everything is removed afterwards:
    a configuration left behind would refuse other tests' Deployments."""
    remove_own_objects(control_plane)
    balancer = await Balancer().start()
    kubeconfig = operator_identity.kubeconfig(
        control_plane, tmp_path / "operator.kubeconfig", namespace, server=proxy.url
    )
    found = Replicas(control_plane, namespace, kubeconfig, tmp_path, kube, balancer)
    install_webhook_configuration(control_plane, namespace, balancer.port)
    try:
        yield found
    finally:
        await found.stop_all()
        remove_own_objects(control_plane)
        await balancer.stop()
    outputs = {r.identity: r.output() for r in found.replicas}
    for identity, output in outputs.items():
        assert "Traceback" not in output, f"{identity}:\n{output[-4000:]}"
    # The replicas watch every namespace (as the chart's clusterWide=true runs them): earlier
    # tests' namespaces still terminating refuse new content with 403 too; not an RBAC matter.
    ours = {namespace, OPERATOR_NAMESPACE, None}
    refused = [c for c in proxy.calls if c.status == 403 and not c.injected and c.namespace in ours]
    assert not refused, f"the chart's RBAC refused the operator: {refused}"
