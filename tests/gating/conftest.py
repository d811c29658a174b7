"""The gating tests reuse the operator's cluster fixture (tests/operator/conftest.py): the real
control plane, a namespace and test kubelet per test, the operator as the chart's ServiceAccount."""

from __future__ import annotations

from tests.operator.conftest import cluster

__all__ = ["cluster"]
