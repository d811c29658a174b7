#!/usr/bin/env bash
# Builds the operator image and the example app image with no Docker engine and no container
# registry (docs/images.md), idempotently, on a Debian 12 machine as root:
#
#   1. tools       buildah, podman, runc and debootstrap from Debian, when one is missing
#   2. config      /etc/containers/containers.conf.d/50-alembic-operator.conf: runc (crun cannot
#                  start containers on hybrid cgroups) and ulimits within the machine's hard limits
#   3. base        localhost/python:3.11-slim-bookworm, a python:3.11-slim-bookworm look-alike made
#                  with debootstrap from the Debian mirror apt uses (skipped when it exists)
#   4. operator    localhost/alembic-operator:dev from ./Dockerfile
#   5. app         localhost/shop-app:dev from examples/app/Dockerfile (skaffold.yaml's names)
#
# Steps 4 and 5 always run (buildah's layer cache makes an unchanged rebuild take seconds), with
# --build-arg PYTHON_IMAGE=<base> and the machine's CA bundle mounted read-only for the build only
# (pip checks PyPI's certificate against it; nothing of it stays in the images). Each step prints
# how long it took.
#
# Usage: scripts/image.sh [--rebuild-base]
# Environment: BASE_IMAGE, OPERATOR_IMAGE, APP_IMAGE (image names), CA_BUNDLE (default
# /etc/ssl/certs/ca-certificates.crt).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE="${BASE_IMAGE:-localhost/python:3.11-slim-bookworm}"
OPERATOR_IMAGE="${OPERATOR_IMAGE:-localhost/alembic-operator:dev}"
APP_IMAGE="${APP_IMAGE:-localhost/shop-app:dev}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
SUITE=bookworm
CONF_DIR=/etc/containers/containers.conf.d
CONF_FILE="$CONF_DIR/50-alembic-operator.conf"

rebuild_base=false
for arg in "$@"; do
    case "$arg" in
        --rebuild-base) rebuild_base=true ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "scripts/image.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done

die() { echo "scripts/image.sh: $*" >&2; exit 1; }
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
total_start=$(now)
step() {  # name, command...: runs the command and prints how long it took
    local name=$1 start
    shift
    echo "== image: $name"
    start=$(now)
    "$@"
    echo "== image: $name done in $(took "$start")"
}

[ "$(id -u)" = 0 ] || die "needs root (apt-get, debootstrap and the system container storage)"

# --- 1. tools ------------------------------------------------------------------------------------
install_tools() {
    local missing=()
    for tool in buildah podman runc debootstrap; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "buildah, podman, runc and debootstrap are installed"
        return
    fi
    echo "installing ${missing[*]} from Debian"
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "could not install ${missing[*]} with apt-get"
}

# --- 2. containers.conf --------------------------------------------------------------------------
# A drop-in of our own: the machine's containers.conf (if any) is left as it is.
limit() {  # wanted, hard limit -> the smaller
    if [ "$2" = unlimited ] || [ "$1" -le "$2" ]; then echo "$1"; else echo "$2"; fi
}
write_config() {
    local nofile nproc content
    nofile=$(limit 20000 "$(ulimit -Hn)")
    nproc=$(limit 4096 "$(ulimit -Hu)")
    content="# Written by alembic-operator's scripts/image.sh (docs/images.md).
# crun refuses to start containers on this kind of machine (cgroups in hybrid mode), and
# podman's default ulimits exceed the machine's hard limits (setrlimit: Operation not permitted).
[containers]
default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]

[engine]
runtime = \"runc\""
    if [ -f "$CONF_FILE" ] && [ "$(cat "$CONF_FILE")" = "$content" ]; then
        echo "$CONF_FILE is up to date"
    else
        mkdir -p "$CONF_DIR"
        printf '%s\n' "$content" >"$CONF_FILE.partial"
        mv "$CONF_FILE.partial" "$CONF_FILE"
        echo "wrote $CONF_FILE"
    fi
    local runtime
    runtime=$(podman info --format '{{.Host.OCIRuntime.Name}}') || die "podman info fails"
    [ "$runtime" = runc ] || die "podman uses $runtime, not runc: another containers.conf overrides $CONF_FILE"
}

# --- 3. the base image ---------------------------------------------------------------------------
apt_uri() {  # suite -> the URI of the first Debian source of this machine's apt serving it
    local suite=$1 file
    {
        for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -f "$file" ] || continue
            awk -v s="$suite" '$1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == s) print $i
            }' "$file"
        done
        for file in /etc/apt/sources.list.d/*.sources; do
            [ -f "$file" ] || continue
            awk -v s="$suite" 'BEGIN { RS = ""; FS = "\n" } {
                types = ""; uris = ""; suites = ""
                for (j = 1; j <= NF; j++) {
                    if ($j ~ /^Types:/) types = $j
                    if ($j ~ /^URIs:/) uris = $j
                    if ($j ~ /^Suites:/) suites = $j
                }
                sub(/^Suites:/, "", suites); gsub(/[ \t]+/, " ", suites)
                if (types ~ /[ \t]deb([ \t]|$)/ && (" " suites " ") ~ (" " s " ")) {
                    sub(/^URIs:[ \t]*/, "", uris); split(uris, u, /[ \t]+/); print u[1]
                }
            }' "$file"
        done
    } | head -n 1
}

# Runs inside the debootstrapped root (as a buildah container): security updates from the
# machine's mirrors, then what python:3.11-slim-bookworm has (python on PATH, no docs, no apt
# lists) and the plain deb.debian.org sources it ships.
# shellcheck disable=SC2016
FINISH_BASE='set -eu
mirror=$1 security=$2 suite=$3
apt="apt-get -qq -o Acquire::https::CAInfo=/run/host-ca.crt"
printf "deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n" \
    "$mirror" "$suite" "$mirror" "$suite" "$security" "$suite" >/etc/apt/sources.list
export DEBIAN_FRONTEND=noninteractive
$apt update
$apt -y upgrade >/dev/null
$apt clean
rm -f /etc/apt/sources.list
cat >/etc/apt/sources.list.d/debian.sources <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# Like Debian slim images: packages installed later skip docs, man pages and translations too.
cat >/etc/dpkg/dpkg.cfg.d/slim <<EOF
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
find /usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
find /usr/share/doc -mindepth 1 -type d -empty -delete
rm -rf /usr/share/man/* /usr/share/info/* /usr/share/locale/* /usr/share/lintian \
    /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old \
    /var/log/apt/* /var/log/*.log /tmp/* /var/tmp/*
: >/etc/hostname
ln -sf /usr/bin/python3 /usr/local/bin/python
python --version'

build_base() {
    if [ "$rebuild_base" = false ] && podman image exists "$BASE_IMAGE"; then
        echo "$BASE_IMAGE exists (scripts/image.sh --rebuild-base makes it again)"
        return
    fi
    local mirror security rootfs raw ctr start
    mirror=$(apt_uri "$SUITE")
    mirror="${mirror:-http://deb.debian.org/debian}"
    security=$(apt_uri "$SUITE-security")
    security="${security:-http://deb.debian.org/debian-security}"
    rootfs=$(mktemp -d /var/tmp/alembic-operator-rootfs.XXXXXX)
    raw="localhost/alembic-operator-rootfs:$SUITE"
    # debootstrap's second stage mounts /proc and friends inside the root and unmounts them
    # before it returns; the root is only removed when nothing is mounted under it.
    # shellcheck disable=SC2064 # expanded now: $rootfs is local
    trap "grep -q ' $rootfs/' /proc/mounts || rm -rf '$rootfs'" EXIT
    echo "debootstrap $SUITE from $mirror (security updates from $security)"
    start=$(now)
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
        || { tail -n 30 "$rootfs.log" >&2; die "debootstrap failed (log: $rootfs.log)"; }
    rm -f "$rootfs.log"
    echo "debootstrap took $(took "$start")"
    tar --numeric-owner -C "$rootfs" -c . | podman import --quiet - "$raw" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
    ctr=$(buildah from --pull=never "$raw")
    buildah run --isolation chroot -v "$CA_BUNDLE:/run/host-ca.crt:ro" "$ctr" -- \
        sh -c "$FINISH_BASE" sh "$mirror" "$security" "$SUITE" \
        || { buildah rm "$ctr" >/dev/null; die "updating the base image failed"; }
    buildah config \
        --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 \
        --cmd '["python3"]' \
        --label "org.opencontainers.image.description=Debian $SUITE (debootstrap --variant=minbase) with python3 and python3-venv: a python:3.11-slim-$SUITE stand-in" \
        "$ctr"
    buildah commit --quiet --squash --rm "$ctr" "$BASE_IMAGE" >/dev/null
    buildah rmi "$raw" >/dev/null
    podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$BASE_IMAGE"
}

# --- 4./5. the project's Dockerfiles -------------------------------------------------------------
build_dockerfile() {  # Dockerfile, image name
    [ -f "$CA_BUNDLE" ] || die "no CA bundle at $CA_BUNDLE (set CA_BUNDLE)"
    local log
    log=$(mktemp /var/tmp/alembic-operator-build.XXXXXX)
    if ! buildah bud --isolation chroot --layers \
        --build-arg "PYTHON_IMAGE=$BASE_IMAGE" \
        -v "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" \
        -f "$1" -t "$2" . >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "building $2 from $1 failed (whole log: $log)"
    fi
    rm -f "$log"
    podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$2"
}

step tools install_tools
step containers.conf write_config
step "base $BASE_IMAGE" build_base
step "operator $OPERATOR_IMAGE" build_dockerfile Dockerfile "$OPERATOR_IMAGE"
step "app $APP_IMAGE" build_dockerfile examples/app/Dockerfile "$APP_IMAGE"
echo "== image: all done in $(took "$total_start")"
