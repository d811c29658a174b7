#!/usr/bin/env bash
# Copies the canonical sources the Helm chart renders into the chart (charts/alembic-operator/files/):
#   crds/*.yaml               -> files/crds/        (the CRD templates render them; crds.enabled)
#   monitoring/alerts.yaml    -> files/alerts.yaml  (the PrometheusRule; prometheusRule.enabled)
#   monitoring/dashboard.json -> files/dashboard.json (the Grafana ConfigMap; grafanaDashboard.enabled)
# A monitoring file that does not exist (yet) is skipped, and a stale chart copy of it removed.
# Run it after changing any of those files: tests/delivery fails when the chart's copies drift.
set -euo pipefail
cd "$(dirname "$0")/.."
chart=charts/alembic-operator/files

mkdir -p "$chart/crds"
rm -f "$chart"/crds/*.yaml
for crd in crds/*.yaml; do
    cp "$crd" "$chart/crds/"
    echo "synced $crd -> $chart/crds/"
done

sync_optional() {
    local source=$1 target=$2
    if [ -f "$source" ]; then
        cp "$source" "$target"
        echo "synced $source -> $target"
    else
        rm -f "$target"
        echo "skipped $source (not present)"
    fi
}
sync_optional monitoring/alerts.yaml "$chart/alerts.yaml"
sync_optional monitoring/dashboard.json "$chart/dashboard.json"
