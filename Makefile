# The two README commands: `make demo` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export VID_ASSETS_DATA ?= $(CURDIR)/data
export HF_HUB_OFFLINE ?= 1

.PHONY: venv demo test ui lint clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,samples,text]'
	touch $@

venv: $(BIN)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: venv $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/vid-assets demo

test: venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

ui: venv $(DAGSTER_HOME)/dagster.yaml
	env --default-signal=INT,TERM $(BIN)/dagster dev -w workspace.yaml

lint: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(DAGSTER_HOME) data/work data/features.zarr
