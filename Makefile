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

# The services the tests start themselves (redis-server, prometheus) come from Debian;
# so does promtool (in the prometheus package), which checks and unit-tests the rules.
services:
	@command -v redis-server >/dev/null && command -v prometheus >/dev/null && \
	  command -v promtool >/dev/null || { \
	  echo "installing redis-server and prometheus (Debian packages)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    redis-server prometheus >/dev/null; }
	@# The console's tests drive Debian's headless Chromium through Playwright.
	@command -v chromium >/dev/null || { \
	  echo "installing chromium (Debian package)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium >/dev/null; }

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

# Benchmark (not part of `make test`): `make bench`, `make bench ARGS=--quick`,
# `make bench ARGS='--reps 5 --only throughput'`; results in bench/results/latest.md.
.PHONY: bench bench-compare
bench: $(STAMP)
	@command -v nginx >/dev/null && command -v wrk >/dev/null && command -v valgrind >/dev/null || { \
	  echo "installing nginx-light, wrk and valgrind (Debian packages)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    nginx-light wrk valgrind >/dev/null; }
	$(PY) bench/run.py $(ARGS)

# The team's side-by-side benchmark (../shared/bench) with this gateway as candidate.
bench-compare: $(STAMP)
	@test -x ../shared/bench/run.sh || { echo "../shared/bench/run.sh not found"; exit 1; }
	BENCH_PY=$(abspath $(PY)) \
	BENCH_KEY_SHA256=$$(printf %s sk-bench | sha256sum | cut -d' ' -f1) \
	../shared/bench/run.sh --no-litellm --candidate-port 18100 --candidate-cwd $(CURDIR) \
	  --candidate '$(abspath $(VENV))/bin/gateway serve --config bench/candidate.toml' $(ARGS)

# The image (Dockerfile) installs requirements.lock: pins and hashes of every runtime
# dependency, for any platform and Python 3.11+. `make lock` after a change of pyproject.
.PHONY: lock wheelhouse test-image image-tools
lock: $(STAMP)
	@$(VENV)/bin/uv --version >/dev/null 2>&1 || $(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml --universal --generate-hashes \
	  --python-version 3.11 --quiet --custom-compile-command "make lock" -o requirements.lock

# Wheels for an offline `docker build` (a `wheelhouse/` folder in the context).
# PYTHON_VERSION: the base image's Python (Debian bookworm's: 3.11.2).
wheelhouse: $(STAMP)
	$(PY) deploy/image/wheelhouse.py --python-version $(or $(PYTHON_VERSION),3.11.2)

image-tools:
	@command -v dockerd >/dev/null && command -v debootstrap >/dev/null || { \
	  echo "installing docker.io and debootstrap (Debian packages)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    docker.io debootstrap >/dev/null; }

# Builds the image with no network on a Debian base made here, runs and stops it.
test-image: $(STAMP) image-tools
	deploy/image/test-image.sh
