# dualboot.db — developer entry points. `make demo` and `make test` work on a fresh Debian machine.
SHELL := /bin/bash
VENV  ?= $(CURDIR)/.venv
BIN   := $(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.cache/collections
# A private Ansible home: a copy of the collection installed under ~/.ansible must not shadow the work tree.
export ANSIBLE_HOME := $(CURDIR)/.cache/ansible-home
PYTEST_ARGS ?=
# The integration layer runs its tests side by side (pytest-xdist): a test spends much of its time
# waiting on servers and on ansible-playbook's own start-up, so three workers keep two cores busy.
PYTEST_WORKERS ?= 3

.PHONY: help setup setup-image demo test matrix lint ruff ansible-lint sanity sanity-cores unit integration molecule build changelog clean

help:
	@echo "make demo    run the dual-boot lifecycle on local clusters (no containers)"
	@echo "make test    everything CI runs: lint, sanity, unit, integration, molecule"
	@echo "make setup   install system packages, the venv, FerretDB (idempotent)"

setup:
	@scripts/setup.sh

setup-image:
	@scripts/setup.sh --image

demo: setup
	@$(BIN)/python demo/run.py

# integration and molecule run side by side (scripts/side-by-side.sh): neither keeps both cores busy alone.
test: setup-image lint sanity sanity-cores unit
	@scripts/side-by-side.sh integration molecule
	@echo "make test: all layers passed"

lint: ruff ansible-lint

ruff: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check --diff plugins tests benchmarks demo

ansible-lint: setup
	$(BIN)/ansible-lint --offline

sanity: setup
	@scripts/sanity.sh

# ansible-test sanity of the older supported ansible-core releases (scripts/lib.sh CORE_VERSIONS), one
# after the other: each run keeps both cores busy, so running them side by side would not be faster.
sanity-cores: setup
	@for v in $$(source scripts/lib.sh && for c in "$${CORE_VERSIONS[@]}"; do echo "$${c%.*}"; done); do \
	  echo "==> ansible-test sanity, ansible-core $$v"; scripts/sanity.sh --core $$v || exit 1; done

unit: setup
	@scripts/pytest.sh tests/unit $(PYTEST_ARGS)

integration: setup
	@scripts/pytest.sh tests/integration -m "not matrix" -n $(PYTEST_WORKERS) --dist worksteal --durations=30 $(PYTEST_ARGS)

# The wide sweeps left out of `make test` (every kill point, every version): see README's development table.
matrix: setup-image
	@scripts/pytest.sh tests/integration -m matrix -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)
	@scripts/with-dockerd.sh scripts/molecule.sh --matrix

molecule: setup-image
	@scripts/with-dockerd.sh scripts/molecule.sh

build: setup
	$(BIN)/ansible-galaxy collection build --force --output-path .cache/build .

changelog: setup
	$(BIN)/antsibull-changelog lint

clean:
	rm -rf .cache/build tests/output .pytest_cache .ruff_cache
