# The README's two commands: `make demo` (set up, train on the embedded digits, report) and
# `make test` (set up with the dev tools, run the test suite).
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test setup setup-dev lint clean

$(BIN)/resnetlab: pyproject.toml scripts/setup.sh
	VENV=$(VENV) sh scripts/setup.sh
	touch $@

$(VENV)/.dev: pyproject.toml scripts/setup.sh
	VENV=$(VENV) sh scripts/setup.sh dev
	touch $@

setup: $(BIN)/resnetlab

setup-dev: $(VENV)/.dev

demo: setup
	$(BIN)/resnetlab train

test: setup-dev
	$(BIN)/python -m pytest -q

lint: setup-dev
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
