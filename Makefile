# The README's commands. Each target sets up its own virtualenv (.venv) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test bench lint docs clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/flask db upgrade
	$(BIN)/flask demo bootstrap
	$(BIN)/gunicorn -c config/gunicorn.py

# The lint runs first: it takes a second, and a tree that fails it fails CI (.ci/run) before the long suite.
test: $(STAMP) lint
	$(BIN)/python -m gevent.monkey --module pytest -p no:cacheprovider $(PYTEST_ARGS)

BENCH_STAMP := $(VENV)/.bench-installed
BENCH_ARGS ?=

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# docs/configuration.md is generated from the settings in config/__init__.py; a test fails when it is stale.
docs: $(STAMP)
	$(BIN)/python -m config.document

clean:
	rm -rf $(VENV) var
