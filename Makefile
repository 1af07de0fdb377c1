# Two commands on a fresh machine: `make run` and `make test`. Everything else is a convenience.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c

VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
INSTALLED := $(VENV)/.installed
# pip warns about every configured index folder that lacks a package; those lines are noise, not errors.
QUIET_PIP := 2>&1 | { grep -v '^WARNING: Location' || true; }

.PHONY: install run test bench lint format clean

$(PY):
	python3.11 -m venv $(VENV) 2>/dev/null || python3 -m venv $(VENV)

# torch first, from the local CPU wheel; constraints.txt keeps every later request on it.
$(INSTALLED): pyproject.toml constraints.txt | $(PY)
	$(PIP) install -q -c constraints.txt torch==2.13.0 $(QUIET_PIP)
	$(PIP) install -q -c constraints.txt -e '.[dev]' $(QUIET_PIP)
	$(PY) -c "import pipelines.defs.dbt.assets"  # parses the dbt project once, so Dagster's first load need not
	touch $@

install: $(INSTALLED)

run: $(INSTALLED)
	$(VENV)/bin/parley serve --seed-demo --pipelines

# The browser tests drive Debian's Chromium; install it when missing (CI runs as root on a clean machine).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	else echo "make test needs Debian's chromium: sudo apt-get install -y chromium" >&2; exit 1; fi

test: $(INSTALLED) $(CHROMIUM)
	$(VENV)/bin/pytest

BENCH_INSTALLED := $(VENV)/.installed-bench
$(BENCH_INSTALLED): $(INSTALLED)
	$(PIP) install -q -c constraints.txt -e '.[dev,bench]' $(QUIET_PIP)
	touch $@

bench: $(BENCH_INSTALLED)
	LITELLM_LOCAL_MODEL_COST_MAP=True $(PY) -m bench

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(INSTALLED)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
