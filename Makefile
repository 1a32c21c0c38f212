# Two commands on a fresh clone:  make run   and   make test
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= config/gateway.toml
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck check services clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/gateway serve --config $(CONFIG)

# The services the tests start themselves (redis-server, prometheus) come from Debian.
services:
	@command -v redis-server >/dev/null && command -v prometheus >/dev/null || { \
	  echo "installing redis-server and prometheus (Debian packages)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    redis-server prometheus >/dev/null; }

test: $(STAMP) services
	$(VENV)/bin/ruff check gateway tests
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check gateway tests
	$(VENV)/bin/ruff format --check gateway tests

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
