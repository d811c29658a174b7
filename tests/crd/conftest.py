"""Fixtures for the CRD tests: the canonical CRD and its admission validator."""

from __future__ import annotations

from typing import Any

import pytest

from alembic_operator.emulation.admission import CRDValidator, validator_for
from tests.crd.manifests import load_crd


@pytest.fixture(scope="session")
def crd() -> dict[str, Any]:
    return load_crd()


@pytest.fixture(scope="session")
def validator(crd: dict[str, Any]) -> CRDValidator:
    return validator_for(crd, "v1alpha1")
