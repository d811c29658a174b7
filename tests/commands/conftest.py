"""The CLI tests reuse the operator's emulated cluster (tests/operator/conftest.py)."""

from __future__ import annotations

from tests.operator.conftest import cluster  # noqa: F401
