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
RUN python -m venv /opt/venv
# Dependencies first (cached while only the source changes), then the package itself.
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/pip uninstall --yes pip \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib \
    && /opt/venv/bin/alembic-operator --help

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
