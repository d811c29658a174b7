#!/usr/bin/env bash
# What the local Kubernetes cluster of the tests and the sandbox needs, installed idempotently
# (a second run with everything present does nothing):
#   etcd                       Debian's etcd-server (apt-get), unless `etcd` is on PATH or in
#                              $KUBEBUILDER_ASSETS
#   cryptography               in the virtualenv (tests/cluster/pki.py makes the throw-away PKI)
#   .tools/bin/helm, kubectl   scripts/tools.sh (the chart's RBAC is rendered by helm template)
# kube-apiserver and kube-controller-manager come from $KUBEBUILDER_ASSETS, or are unpacked from
# ../shared/k8s by tests/cluster/controlplane.find_assets on first use.
# Usage: scripts/cluster-deps.sh [VENV]   (VENV defaults to .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv}"

die() { echo "scripts/cluster-deps.sh: $*" >&2; exit 1; }

[ -x "$venv/bin/python" ] || die "no virtualenv at $venv (run scripts/bootstrap.sh $venv first)"

if ! command -v etcd >/dev/null && ! [ -x "${KUBEBUILDER_ASSETS:-/nonexistent}/etcd" ]; then
    command -v apt-get >/dev/null || die "no etcd: install etcd (Debian: etcd-server) or set KUBEBUILDER_ASSETS"
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || die "no etcd, and installing it needs root: apt-get install -y etcd-server"
        sudo=sudo
    fi
    echo "scripts/cluster-deps.sh: installing etcd (apt-get install -y etcd-server)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq etcd-server >/dev/null
    command -v etcd >/dev/null || die "etcd-server installed but no etcd on PATH"
fi

if ! "$venv/bin/python" -c 'import cryptography' 2>/dev/null; then
    echo "scripts/cluster-deps.sh: installing cryptography into $venv" >&2
    "$venv/bin/python" -m pip install --quiet cryptography
fi

scripts/tools.sh "$venv"
