# dualboot.db — developer entry points. `make demo` and `make test` work on a fresh Debian machine.
SHELL := /bin/bash
VENV  ?= $(CURDIR)/.venv
BIN   := $(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.cache/collections
# A private Ansible home: a copy of the collection installed under ~/.ansible must not shadow the work tree.
export ANSIBLE_HOME := $(CURDIR)/.cache/ansible-home
PYTEST_ARGS ?=

.PHONY: help setup setup-image demo test matrix lint ruff ansible-lint sanity unit integration molecule build changelog clean

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

test: setup-image lint sanity unit integration molecule
	@echo "make test: all layers passed"

lint: ruff ansible-lint

ruff: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check --diff plugins tests benchmarks demo

ansible-lint: setup
	$(BIN)/ansible-lint --offline

sanity: setup
	@scripts/sanity.sh

unit: setup
	@scripts/pytest.sh tests/unit $(PYTEST_ARGS)

integration: setup
	@scripts/pytest.sh tests/integration -m "not matrix" $(PYTEST_ARGS)

# The wide sweeps left out of `make test` (every kill point, every version): see README's development table.
matrix: setup
	@scripts/pytest.sh tests/integration -m matrix $(PYTEST_ARGS)

molecule: setup-image
	@scripts/with-dockerd.sh scripts/molecule.sh

build: setup
	$(BIN)/ansible-galaxy collection build --force --output-path .cache/build .

changelog: setup
	$(BIN)/antsibull-changelog lint

clean:
	rm -rf .cache/build tests/output .pytest_cache .ruff_cache
