"""Fixtures: a served apiserver emulator, a LocalKubelet against it, an HTTP client."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from alembic_operator.emulation.apiserver import ApiServer
from alembic_operator.emulation.kubelet import ImageSpec, LocalKubelet
from tests.conftest import MIGRATIONS, REPO
from tests.emulation.helpers import Client

PYTHON_IMAGE = "python:3.11-slim"
APP_IMAGE = "registry.example.com/shop/app:1.4.2"
OPERATOR_IMAGE = "ghcr.io/example/alembic-operator:dev"


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with ApiServer() as server:
        yield server


@pytest.fixture
def images(tmp_path: Path) -> dict[str, ImageSpec]:
    plain = tmp_path / "python-image"
    plain.mkdir()
    return {
        PYTHON_IMAGE: ImageSpec(root=plain, python=sys.executable),
        APP_IMAGE: ImageSpec(root=MIGRATIONS),
        OPERATOR_IMAGE: ImageSpec(root=REPO),
    }


@pytest.fixture
async def kubelet(
    api: ApiServer, images: dict[str, ImageSpec], tmp_path: Path
) -> AsyncIterator[LocalKubelet]:
    async with LocalKubelet(
        api.base_url, images=images, log_sink=api.set_pod_log, workdir=tmp_path / "kubelet"
    ) as local:
        yield local


@pytest.fixture
async def client(api: ApiServer) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession(api.base_url) as session:
        yield Client(session)
