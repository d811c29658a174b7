#!/usr/bin/env bash
# The whole test suite: lint, format, types, import contracts, then pytest against the machine's
# real PostgreSQL and MariaDB (started here when they are down) and a real Kubernetes control
# plane (etcd, kube-apiserver, kube-controller-manager v1.36.2) the tests start on loopback.
# Run it as `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin

scripts/services.sh

# One command per line: under `set -e` a failure on the left of `&&` would not stop the script.
echo "== ruff"; "$bin/ruff" check .
"$bin/ruff" format --check .
echo "== mypy --strict"; "$bin/mypy"
echo "== import contracts"; "$bin/lint-imports"
echo "== promtool"; scripts/install-promtool.sh   # Debian's prometheus package, when missing
echo "== delivery tools"; scripts/tools.sh   # helm, kubectl, hadolint, kubernetes-validate
echo "== control plane"; scripts/cluster-deps.sh   # etcd (Debian), kube-apiserver, kube-controller-manager
echo "== pytest"
# -p no:cacheprovider: CI runs on a clean clone and must not depend on a previous run's cache.
# -n 2 --dist loadfile: two pytest-xdist workers, each with its own control plane; a file's tests
# stay on one worker (module and session fixtures, e.g. the old-stack virtualenv, are built once).
# Most of a test's time is spent waiting for controllers, pods and subprocesses, so two workers
# on two cores take ≈60 % of one worker's time (docs/testing.md). `-n 0` runs in one process.
# --durations: the slowest tests in every CI log, so the suite's budget (15 min) can be kept.
exec "$bin/python" -m pytest -p no:cacheprovider -n 2 --dist loadfile --durations=30 "$@"
