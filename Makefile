# The README's commands. Everything runs from a project-local virtual environment (.venv),
# installed from the lock (uv.lock: exact versions and hashes of every package, extras and dev
# tools included). uv itself is pinned by hash in tools/uv.txt and lives in .tools/.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS := .tools
UV := $(TOOLS)/bin/uv
export PATH := $(CURDIR)/$(BIN):$(PATH)
# uv: never download an interpreter, never touch any environment but ours.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export UV_NO_PROGRESS := 1

.PHONY: venv run test check lint typecheck imports pytest bench services clean lock lock-check

$(UV): tools/uv.txt
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --no-deps --require-hashes -r tools/uv.txt
	@touch $(UV)

## make lock: re-resolve uv.lock from pyproject.toml (on purpose: this is how versions move)
lock: $(UV)
	$(UV) lock --python $(PYTHON)

## lock-check: fail in one line when pyproject.toml and uv.lock disagree
lock-check: $(UV)
	@$(UV) lock --check --python $(PYTHON) --quiet >/dev/null 2>&1 || \
	  { echo "uv.lock does not match pyproject.toml: run 'make lock' and commit uv.lock" >&2; exit 1; }

# Bytecode is compiled once here (the installed packages and ours): a machine or CI job that
# sets PYTHONDONTWRITEBYTECODE would otherwise compile every module at every start of
# class-admin, class-api and each test's subprocess (class-admin --help: 2.6 s against 0.85 s).
$(STAMP): pyproject.toml uv.lock $(UV)
	@$(MAKE) --no-print-directory lock-check
	$(UV) sync --locked --extra dev --python $(PYTHON) --quiet --compile-bytecode
	@$(BIN)/python -m compileall -q packages apps bench >/dev/null
	@touch $(STAMP)

venv: $(STAMP)

## make run: create the environment, migrate the embedded SQLite database, start the API (+ workers)
## with human-readable logs (LOG_FORMAT=console unless set), after saying where to look.
RUN_PORT = $${CLASS_MANAGEMENT_SERVICE_PORT:-5002}
run: $(STAMP)
	$(BIN)/class-admin db upgrade
	@echo "class-api: docs page http://localhost:$(RUN_PORT)/schema, health /healthz, metrics /metrics"
	@echo "events wait in the outbox unless KAFKA_BOOTSTRAP_SERVERS is set: $(BIN)/class-admin outbox status"
	@echo "stop with Ctrl-C; the data stays in ./class_management.db"
	CLASS_MANAGEMENT_SERVICE_LOG_FORMAT=$${CLASS_MANAGEMENT_SERVICE_LOG_FORMAT:-console} \
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

## make test: environment, services, static checks and the whole pytest suite, in
## PYTEST_WORKERS processes (pytest-xdist; a test file stays in one process, so its module
## fixtures are built once). PYTEST_WORKERS=0 runs everything in this process.
PYTEST_WORKERS ?= 3
PYTEST_ARGS = $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)
test: lock-check $(STAMP) services check
	$(BIN)/python -m pytest $(PYTEST_ARGS)

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make bench: every benchmark, one table, bench/results.json
bench: $(STAMP) services
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
