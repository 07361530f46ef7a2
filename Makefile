# Two commands for a new user: `make demo` runs the whole job end to end, `make test` runs the tests.
# Both create .venv and install what they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
BENCH_STAMP := $(VENV)/.bench-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
export NEXTBEST_HOME ?= $(CURDIR)/.nextbest
CUSTOMERS ?= 20000

.PHONY: install browser demo test lint format typecheck bench mlflow-run stop clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.0.1" "setuptools==80.9.0" "wheel==0.45.1"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/nextbest demo --customers $(CUSTOMERS)

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# Debian's chromium for the explorer's browser test (driven by Playwright; no browser download).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || { echo "installing Debian's chromium for the browser tests"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	@rm -f $(VENV)/.bench-* && touch $@

# Every script in benchmarks/ (each measures its references in the same run; policy_quality and training_dask
# take several minutes, external_quality several hours at its full sizes). benchmarks/http_decide.py drives
# the service with wrk, installed here when missing. The bench extra (causalml, obp, econml) is installed only here.
bench: $(BENCH_STAMP)
	@command -v wrk >/dev/null || { echo "installing wrk for benchmarks/http_decide.py"; \
		export DEBIAN_FRONTEND=noninteractive; $(SUDO) apt-get install -y -qq wrk >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk >/dev/null; }; }
	@for script in benchmarks/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# An MLproject entry point in this environment, tracked in the same store: make mlflow-run ENTRY=train
ENTRY ?= train
mlflow-run: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" MLFLOW_TRACKING_URI="sqlite:///$(NEXTBEST_HOME)/mlflow.db" \
		$(BIN)/mlflow run . -e $(ENTRY) --env-manager local --experiment-name nextbest $(ARGS)

stop: $(STAMP)
	$(BIN)/nextbest stop

clean:
	rm -rf $(VENV) .nextbest .pytest_cache

# MLflow tracking + registry server on PostgreSQL (the scale-out store; docs/deploy.md). Create the database
# first (createdb mlflow), then point nextbest at the server: NEXTBEST_MLFLOW_TRACKING_URI=http://127.0.0.1:5000
# Artifacts are proxied by the server (clients need no shared disk) into MLFLOW_ARTIFACTS.
MLFLOW_BACKEND ?= postgresql+psycopg://postgres@127.0.0.1:5432/mlflow
MLFLOW_ARTIFACTS ?= $(NEXTBEST_HOME)/mlflow-artifacts
MLFLOW_HOST ?= 127.0.0.1
MLFLOW_PORT ?= 5000
.PHONY: mlflow-server bento
mlflow-server: $(STAMP)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow server --backend-store-uri "$(MLFLOW_BACKEND)" \
		--artifacts-destination "$(MLFLOW_ARTIFACTS)" --serve-artifacts --workers 1 \
		--host $(MLFLOW_HOST) --port $(MLFLOW_PORT)

# A deployable Bento with the registry's champion: make bento [ARGS="--model 7 --bento-version 2026.12.1"]
bento: $(STAMP)
	$(BIN)/nextbest build $(ARGS)
