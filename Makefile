# The README's commands. Everything runs from a project-local virtual environment (.venv).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: venv run test check lint typecheck imports pytest bench services clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

## make run: create the environment, migrate the embedded SQLite database, start the API (+ workers)
run: $(STAMP)
	$(BIN)/class-admin db upgrade
	exec $(BIN)/class-api

## make check: ruff, mypy --strict, import-linter
check: $(STAMP) lint typecheck imports

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check packages apps tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

## services: make sure PostgreSQL and Redis answer (starts the machine's own servers if they are stopped)
services:
	@bash scripts/ensure-services.sh

## make test: environment, services, static checks and the whole pytest suite
test: $(STAMP) services check
	$(BIN)/python -m pytest

pytest: $(STAMP)
	$(BIN)/python -m pytest

## make bench: every benchmark, one table, bench/results.json
bench: $(STAMP) services
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
