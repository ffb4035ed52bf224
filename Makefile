# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
KAFKA_JARS := deploy/local/target/kafka-libs/.fetched
DYNOXIDE := deploy/local/node_modules/.installed

.PHONY: run test lint typecheck unit integration bench clean

run: $(INSTALLED) $(KAFKA_JARS) $(DYNOXIDE)
	$(BIN)/execution-stream dev

test: $(INSTALLED) $(KAFKA_JARS) $(DYNOXIDE) lint typecheck
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

$(DYNOXIDE): deploy/local/package.json deploy/local/package-lock.json
	npm ci --prefix deploy/local --no-audit --no-fund
	touch $@

clean:
	rm -rf $(VENV) deploy/local/target deploy/local/node_modules .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
