# Every target creates its own virtualenv (.venv) on first use: a fresh clone needs only Python 3.11
# and the machine's PostgreSQL and MariaDB.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: sandbox demo test lint typecheck contracts unit clean

$(BIN)/.installed: pyproject.toml
	scripts/bootstrap.sh $(VENV)
	touch $@

## sandbox: the whole product on this machine — a real local control plane (etcd, kube-apiserver,
## kube-controller-manager), a test kubelet, the operator, the example migrations.
## SANDBOX_ARGS: --keep, --database-url URL, --workdir DIR (python -m tests.cluster.sandbox -h).
sandbox: $(BIN)/.installed
	scripts/tools.sh $(VENV)
	scripts/cluster-deps.sh
	$(BIN)/python -m tests.cluster.sandbox $(SANDBOX_ARGS)

## demo: the main job — run the example migrations to head on a throw-away SQLite database.
demo: $(BIN)/.installed
	scripts/demo.sh

## test: everything CI runs (lint, types, import contracts, the whole pytest suite).
test: $(BIN)/.installed
	scripts/test.sh

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

contracts: $(BIN)/.installed
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .venv-* .pytest_cache .mypy_cache .ruff_cache build *.egg-info

## bench: the benchmarks (not part of `make test`); results go to docs/benchmarks.md.
.PHONY: bench
bench: $(BIN)/.installed
	scripts/tools.sh $(VENV)
	scripts/cluster-deps.sh
	bench/run_all.sh

## image: the operator and example app images without Docker or a registry (root, Debian 12;
## installs buildah/podman on first use). docs/images.md; `docker build` works as before.
.PHONY: image image-test
image:
	scripts/image.sh

## image-test: build the images, then run them for real (tests/image; needs PostgreSQL).
image-test: $(BIN)/.installed image
	scripts/services.sh
	$(BIN)/python -m pytest -p no:cacheprovider tests/image
