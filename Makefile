# The whole set-up is two commands:
#   make demo   create .venv, install Bastion, run the built-in demo, print where the report is
#   make test   create .venv, install Bastion with the dev extra, run the full test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: demo test lint typecheck clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml
	$(PIP) -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/bin/python pyproject.toml
	$(PIP) -e '.[dev]'
	@touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(VENV)/bin/bastion demo --output bastion-report

test: $(VENV)/.installed-dev
	@bash scripts/ensure-chromium.sh
	@bash scripts/run-tests.sh

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .bastion bastion-report .pytest_cache .mypy_cache .ruff_cache
