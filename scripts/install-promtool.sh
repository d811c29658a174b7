#!/usr/bin/env bash
# Makes `promtool` available for the alert rule tests (monitoring/tests) and the metrics tests:
# when it is missing, installs Debian's `prometheus` package (it ships promtool). Idempotent: with
# promtool on PATH it does nothing. Fails loudly when it cannot install it.
# Usage: scripts/install-promtool.sh
set -euo pipefail

die() { echo "scripts/install-promtool.sh: $*" >&2; exit 1; }

if command -v promtool >/dev/null 2>&1; then
    exit 0
fi
command -v apt-get >/dev/null 2>&1 \
    || die "promtool is missing and there is no apt-get to install Debian's 'prometheus' package"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "promtool is missing; installing it needs root or sudo"
    sudo="sudo"
fi
echo "scripts/install-promtool.sh: installing Debian's 'prometheus' package (promtool)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq || die "apt-get update failed"
$sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
    || die "apt-get install prometheus failed"
command -v promtool >/dev/null 2>&1 || die "the 'prometheus' package installed no promtool on PATH"
promtool --version >&2
