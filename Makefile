# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
KAFKA_JARS := deploy/local/target/kafka-libs/.fetched

.PHONY: run test lint typecheck unit integration bench clean

run: $(INSTALLED) $(KAFKA_JARS)
	$(BIN)/execution-stream dev

test: $(INSTALLED) $(KAFKA_JARS) lint typecheck
	$(BIN)/pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(INSTALLED)
	$(BIN)/mypy

unit: $(INSTALLED)
	$(BIN)/pytest tests/unit

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(KAFKA_JARS): deploy/local/pom.xml
	mvn -q -B -f deploy/local/pom.xml dependency:copy-dependencies
	touch $@

clean:
	rm -rf $(VENV) deploy/local/target .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
