"""Fixtures: an emulated cluster (apiserver, local kubelet, the CRD) and the operator in it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from alembic_operator.emulation.apiserver import ApiServer
from alembic_operator.emulation.kubelet import ImageSpec, LocalKubelet
from tests.conftest import MIGRATIONS, REPO
from tests.emulation.helpers import Client
from tests.operator.harness import APP_IMAGE, OPERATOR_IMAGE, Cluster


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    """An emulated cluster with the CRD installed and the operator running."""
    crd = yaml.safe_load((REPO / "crds" / "databasemigrations.yaml").read_text())
    images = {APP_IMAGE: ImageSpec(root=MIGRATIONS), OPERATOR_IMAGE: ImageSpec(root=REPO)}
    async with ApiServer() as api:
        api.install_crd(crd)
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.setenv("ALEMBIC_OPERATOR_RUNNER_IMAGE", OPERATOR_IMAGE)
        if "ALEMBIC_OPERATOR_METRICS_PORT" not in os.environ:  # tests/metrics picks a free one
            monkeypatch.setenv("ALEMBIC_OPERATOR_METRICS_PORT", "0")
        async with (
            LocalKubelet(
                api.base_url, images=images, log_sink=api.set_pod_log, workdir=tmp_path / "kubelet"
            ) as kubelet,
            aiohttp.ClientSession(api.base_url) as session,
        ):
            cluster = Cluster(
                api=api, kubelet=kubelet, client=Client(session), kubeconfig=kubeconfig
            )
            await cluster.start_operator()
            try:
                yield cluster
            finally:
                if cluster.operator is not None:
                    output = await cluster.stop_operator()
                    assert "Traceback" not in output, output
