#!/usr/bin/env bash
# Installs what the local real control plane (tests/cluster) needs, idempotently:
#   etcd                      Debian's etcd-server (when no etcd is on PATH or in $KUBEBUILDER_ASSETS)
#   kube-apiserver,           from $KUBEBUILDER_ASSETS (envtest's convention) when set; else
#   kube-controller-manager   ../shared/k8s/install.sh unpacks them into .k8s-assets/
# A missing piece stops with the reason; nothing is downloaded from anywhere but Debian.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "scripts/cluster-deps.sh: $*" >&2; exit 1; }

if ! command -v etcd >/dev/null && [ ! -x "${KUBEBUILDER_ASSETS:-/nonexistent}/etcd" ]; then
    echo "scripts/cluster-deps.sh: installing etcd (Debian's etcd-server)" >&2
    command -v apt-get >/dev/null || die "no etcd and no apt-get: install etcd 3.4+ and put it on PATH"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update failed"
    apt-get install -y -qq etcd-server >/dev/null || die "apt-get install etcd-server failed"
fi
etcd --version >/dev/null 2>&1 || [ -x "${KUBEBUILDER_ASSETS:-/nonexistent}/etcd" ] || die "etcd does not run"

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
    assets=$KUBEBUILDER_ASSETS
elif [ -x ../shared/k8s/install.sh ] || [ -f ../shared/k8s/install.sh ]; then
    assets=$(bash ../shared/k8s/install.sh "$PWD/.k8s-assets")
else
    die "no Kubernetes binaries: set KUBEBUILDER_ASSETS (e.g. \$(setup-envtest use 1.36 -p path)) or run beside ../shared/k8s"
fi
for binary in kube-apiserver kube-controller-manager; do
    [ -x "$assets/$binary" ] || die "$assets/$binary is missing"
done
"$assets/kube-apiserver" --version
