# Two commands for a new user: `make demo` runs the whole job end to end, `make test` runs the tests.
# Both create .venv and install what they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
export NEXTBEST_HOME ?= $(CURDIR)/.nextbest
CUSTOMERS ?= 20000

.PHONY: install demo test lint format typecheck bench mlflow-run stop clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.0.1" "setuptools==80.9.0" "wheel==0.45.1"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/nextbest demo --customers $(CUSTOMERS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/online_features.py
	$(BIN)/python benchmarks/rules.py

# An MLproject entry point in this environment, tracked in the same store: make mlflow-run ENTRY=train
ENTRY ?= train
mlflow-run: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" MLFLOW_TRACKING_URI="sqlite:///$(NEXTBEST_HOME)/mlflow.db" \
		$(BIN)/mlflow run . -e $(ENTRY) --env-manager local --experiment-name nextbest $(ARGS)

stop: $(STAMP)
	$(BIN)/nextbest stop

clean:
	rm -rf $(VENV) .nextbest .pytest_cache
