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

# Checkov (the manifests' policy check) in a virtualenv of its own: its pins conflict with the project's.
POLICY_VENV := .venv-policy
POLICY_STAMP := $(POLICY_VENV)/.installed

$(POLICY_STAMP): requirements-policy.txt
	test -x $(POLICY_VENV)/bin/python || $(PYTHON) -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/pip install --quiet -r requirements-policy.txt
	touch $(POLICY_STAMP)

# The lint runs first: it takes a second, and a tree that fails it fails CI (.ci/run) before the long suite.
# REQUIRE_DEPLOY_TOOLS: the tools installed above (hadolint, checkov) must be there, not skipped.
test: $(STAMP) $(POLICY_STAMP) lint
	REQUIRE_DEPLOY_TOOLS=1 $(BIN)/python -m gevent.monkey --module pytest -p no:cacheprovider $(PYTEST_ARGS)

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
	rm -rf $(VENV) $(POLICY_VENV) var
