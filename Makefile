# The two quick-start commands: `make run` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= ./moldau-data
LISTEN ?= 127.0.0.1:9092

.PHONY: run test lint bench venv test-deps etcd-dep clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

venv: $(VENV)/.installed

# etcd (Debian's etcd-server) coordinates clusters: `moldau cluster up` and the cluster tests.
etcd-dep:
	@command -v etcd >/dev/null 2>&1 || { \
		SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq etcd-server >/dev/null; }

run: $(VENV)/.installed etcd-dep
	$(BIN)/moldau broker --listen $(LISTEN) --data-dir $(DATA_DIR)

# System tools the compatibility tests drive: kcat (apt) and kafkajs (npm).
test-deps: $(VENV)/.test-installed etcd-dep
	@command -v kcat >/dev/null 2>&1 || { \
		SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq kcat >/dev/null; }
	@[ -d tests/compat/js/node_modules/kafkajs ] || (cd tests/compat/js && npm install --no-audit --no-fund --silent)

test: test-deps
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -q -n 2 --dist loadfile

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: $(VENV)/.test-installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) tests/compat/js/node_modules
