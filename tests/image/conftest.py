"""The images under test: (re)built once per session by scripts/image.sh (the session fixture
``built_images`` of tests/cluster/fixtures.py, shared with the container-mode kubelet tests)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def images(built_images: tuple[str, ...]) -> tuple[str, ...]:
    return built_images
