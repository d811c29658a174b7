"""Fixtures: the operator on the real control plane serving /metrics, and the CLI's person.

The long-name checks (issue 15, rules 11-13) need all three judges at once: the apiserver (the
operator's cluster fixture, tests/operator), a scrape (the metrics port, tests/metrics) and the
on-call CLI (tests/commands).
"""

from tests.commands.conftest import oncall, person_kubeconfig  # noqa: F401 - the CLI's person
from tests.metrics.conftest import metrics_port  # noqa: F401 - autouse: /metrics on a free port
from tests.operator.conftest import cluster  # noqa: F401 - the same cluster fixture
