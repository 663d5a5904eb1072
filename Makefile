# reviewops: the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3.11
VENV := .venv
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
ENV := source bin/env.sh &&
# The locks are resolved for the image's platform (Linux x86_64, Python 3.11) wherever `make lock` runs.
LOCK := $(VENV)/bin/uv pip compile --python-version 3.11 --python-platform x86_64-unknown-linux-gnu

help:  ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "reviewops needs Python 3.11 ($(PYTHON) not found): set PYTHON=/path/to/python3.11" >&2; exit 2; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip sync --compile-bytecode --python $(VENV)/bin/python requirements.txt requirements-dev.txt
	$(VENV)/bin/uv pip install --python $(VENV)/bin/python --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)  ## Create .venv with exactly the locks (runtime and development), and the reviewops command

airflow-db: $(STAMP)
	@$(ENV) $(VENV)/bin/airflow db migrate >/dev/null && echo "Airflow metadata DB ready in $$AIRFLOW_HOME"

demo: airflow-db  ## Run the whole lifecycle through Airflow on the shipped reviews
	@# dag.test() activates no asset (the scheduler's DAG processing does), so every asset event of
	@# the demo would log that its asset is new or inactive: silenced here, not in a deployment.
	@$(ENV) AIRFLOW__LOGGING__LOGGING_LEVEL=$${DEMO_LOG_LEVEL:-WARNING} \
		AIRFLOW__LOGGING__NAMESPACE_LEVELS=$${AIRFLOW__LOGGING__NAMESPACE_LEVELS:-airflow.assets.manager=error} \
		$(VENV)/bin/python -m reviewops_airflow.demo

test: $(STAMP)  ## Run the whole test suite
	bin/services start
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)  ## Run the benchmarks (11 min without the orchestration bench; PostgreSQL at 127.0.0.1:5432) and write bench/RESULTS.md
	$(VENV)/bin/python -m bench.run_all

lint: $(STAMP)  ## ruff, mypy, the import contracts (.importlinter) and deptry (requirements.in against the imports)
	$(VENV)/bin/ruff check include plugins dags tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/deptry include plugins dags

airflow: airflow-db  ## Start Airflow (scheduler, api-server, ...) on http://localhost:8080
	@$(ENV) echo "Airflow UI: http://localhost:8080  user: admin  password: in $$AIRFLOW_HOME/passwords.json (written on first start)"
	@$(ENV) $(VENV)/bin/airflow pools set vertex_tuning 1 "Vertex AI tuning jobs: each holds a worker slot while it polls" >/dev/null
	@$(ENV) exec $(VENV)/bin/airflow standalone

lock:  ## Recompile requirements.txt from requirements.in, then requirements-dev.txt (constrained by it) from requirements-dev.in
	$(LOCK) requirements.in -o requirements.txt
	$(LOCK) requirements-dev.in -o requirements-dev.txt

clean-artifacts:  ## Delete the local data root and Airflow home (the demo's results)
	rm -rf artifacts .airflow

.PHONY: help install airflow-db demo test bench lint airflow lock clean-artifacts
