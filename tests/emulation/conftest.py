"""Fixtures: a served emulator with the example CRDs, and an HTTP client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from alembic_operator.emulation.apiserver import ApiServer
from alembic_operator.emulation.registry import Registry
from tests.emulation.helpers import GADGET_CRD, WIDGET_CRD, Client


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    # The schema validator (admission.py) is exercised in test_crds.py; here the hook is empty.
    async with ApiServer(registry=Registry(validator_factory=None)) as server:
        server.install_crd(WIDGET_CRD)
        server.install_crd(GADGET_CRD)
        yield server


@pytest.fixture
async def session(api: ApiServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(api.base_url) as http:
        yield http


@pytest.fixture
def client(session: aiohttp.ClientSession) -> Client:
    return Client(session)
