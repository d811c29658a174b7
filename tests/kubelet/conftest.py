"""Fixtures: the test kubelet of this test's namespace, with the images these tests use."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.cluster.kubelet import TestKubelet
from tests.cluster.processes import ImageSpec
from tests.conftest import MIGRATIONS, REPO

PYTHON_IMAGE = "python:3.11-slim"
APP_IMAGE = "registry.example.com/shop/app:1.4.2"
OPERATOR_IMAGE = "ghcr.io/example/alembic-operator:dev"


@pytest.fixture(autouse=True)
def images(kubelet: TestKubelet, tmp_path: Path) -> dict[str, ImageSpec]:
    """A plain Python image (an empty folder), the example app and the operator."""
    plain = tmp_path / "python-image"
    plain.mkdir()
    kubelet.images.update(
        {
            PYTHON_IMAGE: ImageSpec(root=plain, python=sys.executable),
            APP_IMAGE: ImageSpec(root=MIGRATIONS),
            OPERATOR_IMAGE: ImageSpec(root=REPO),
        }
    )
    return kubelet.images
