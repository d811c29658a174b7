# syntax=docker/dockerfile:1
# The alembic-operator image: the operator (`alembic-operator run`) and the runner init container
# of every migration Job (`alembic-operator write-runner PATH`) run from this one image.
#
#   docker build -t ghcr.io/alembic-operator/alembic-operator:0.1.0 .
#
# Stage 1 builds a virtualenv with the package and its dependencies (all wheels: no compiler is
# needed); stage 2 copies that virtualenv into a clean slim Python runtime, so no build tool, pip
# cache or source tree reaches the final image. It runs as the non-root UID/GID 65532 (numeric,
# so Kubernetes' runAsNonRoot check can verify it).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# binutils (strip, readelf) for the builder only: see the extension modules below.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/* \
    && python -m venv /opt/venv
# Dependencies first, read from pyproject.toml: their layer is reused while only the source changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > /tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt
# Then the package itself (its dependencies are all in place).
COPY README.md ./
COPY operator/ operator/
# What the product never loads leaves the venv (docs/images.md has the sizes):
# - the test suites some dependencies ship (tests/, test/ folders; not their importable
#   `testing` helpers);
# - pip and setuptools: nothing is installed at run time;
# - debug symbols of the extension modules (half of their 38 MB). Modules with an RPATH, which
#   auditwheel gives those loading vendored libraries (psycopg2), are left as they are.
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps . \
    && site="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && find "$site" -depth -type d \( -name tests -o -name test \) -exec rm -rf {} + \
    && find "$site" -name '*.so' ! -path '*.libs/*' -exec sh -ec 'for f; do \
        if ! readelf -d "$f" | grep -q "(R.*PATH)"; then strip --strip-unneeded "$f"; fi; done' sh {} + \
    && /opt/venv/bin/pip uninstall --yes --quiet setuptools pip \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib \
    && /opt/venv/bin/alembic-operator --help > /dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="alembic-operator" \
      org.opencontainers.image.description="Runs Alembic migrations as one-shot Kubernetes Jobs and gates Deployments on them" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Nothing is written at run time outside /tmp (an emptyDir in the chart): the root filesystem
# can be mounted read-only.
WORKDIR /tmp
USER 65532:65532
ENTRYPOINT ["alembic-operator"]
CMD ["run", "--standalone"]
