"""The CLI tests: the operator's cluster fixture (tests/operator), and a person at the keyboard.

The person is the cluster admin with this test's namespace as the context's namespace (as
``kubectl config set-context --current --namespace`` leaves it); the operator keeps its own
kubeconfig (the chart's ServiceAccount through the fault proxy), which the CLI never uses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.controlplane import ControlPlane, write_kubeconfig
from tests.commands.helpers import OnCall
from tests.operator.conftest import cluster  # noqa: F401 - the same cluster fixture


@pytest.fixture
def person_kubeconfig(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> Path:
    """The admin's kubeconfig, its context's namespace this test's."""
    return write_kubeconfig(
        tmp_path / "person.kubeconfig",
        server=control_plane.server,
        ca=control_plane.ca.cert,
        user="admin",
        client=control_plane.admin,
        namespace=namespace,
    )


@pytest.fixture
def oncall(person_kubeconfig: Path) -> OnCall:
    """The CLI as that person runs it."""
    return OnCall(person_kubeconfig)
