# The two README commands: `make demo` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export VID_ASSETS_DATA ?= $(CURDIR)/data
export HF_HUB_OFFLINE ?= 1
# Dagster hands events to the event log in batches only when this is set; dagster.yaml's SQLite
# storage (and Postgres) then writes a batch in one transaction. The daemon and `dagster dev` read it.
export DAGSTER_EVENT_BATCH_SIZE ?= 1000

.PHONY: venv demo test ui serve lint clean services

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,samples,text,scale,vae,s3,gcs]'
	touch $@

venv: $(BIN)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: venv $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/vid-assets demo

# The scale-out test starts its own PostgreSQL (Debian's binaries) and Redis; the web-page test drives
# Debian's Chromium headless (Playwright uses /usr/bin/chromium; it never downloads a browser); the
# SLURM test starts its own munge + slurmctld + slurmd (Debian's slurm-wlm).
services:
	@command -v redis-server >/dev/null 2>&1 || (apt-get install -y -q redis-server >/dev/null 2>&1 \
	  || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q redis-server >/dev/null 2>&1)) \
	  || echo "redis-server not installable here: the Postgres+Celery test will be skipped"
	@command -v chromium >/dev/null 2>&1 || (apt-get install -y -q chromium >/dev/null 2>&1 \
	  || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) \
	  || echo "chromium not installable here: the web-page test will be skipped"
	@command -v slurmctld >/dev/null 2>&1 || (apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 \
	  || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q slurm-wlm munge >/dev/null 2>&1)) \
	  || echo "slurm-wlm not installable here: the SLURM test will be skipped"

# Two pytest workers, each taking whole files (their module fixtures, such as a running daemon, stay
# in one process): on 2 cores the suite waits on servers and subprocesses about half the time, so
# it took 10.4 min against 16.9 in one process (benchmarks/RESULTS.md, session 24).
TEST_WORKERS ?= 2
test: venv services
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

ui: venv $(DAGSTER_HOME)/dagster.yaml
	env --default-signal=INT,TERM $(BIN)/dagster dev -w workspace.yaml

# The prediction service on http://127.0.0.1:8000/ (pick a video on the page, or POST to /v1/predict).
serve: venv
	$(BIN)/vid-assets serve

lint: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(DAGSTER_HOME) data/work data/features.zarr
