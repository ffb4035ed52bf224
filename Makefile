# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
KAFKA_JARS := deploy/local/target/kafka-libs/.fetched
DYNOXIDE := deploy/local/node_modules/.installed
PROMETHEUS_DIR := deploy/local/target/prometheus
PROMTOOL := $(PROMETHEUS_DIR)/.fetched

.PHONY: run demo test lint typecheck unit integration bench clean

run: $(INSTALLED) $(KAFKA_JARS) $(DYNOXIDE)
	$(BIN)/execution-stream dev

demo: $(INSTALLED)
	$(BIN)/execution-stream demo

test: $(INSTALLED) $(KAFKA_JARS) $(DYNOXIDE) $(PROMTOOL) lint typecheck
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

# promtool and prometheus from Debian's package, unpacked here without root; where apt-get cannot
# fetch it the tests check the rules' structure instead (and say so), so the build goes on.
$(PROMTOOL):
	@mkdir -p $(PROMETHEUS_DIR)/usr/bin
	@if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then \
		echo "apt-get or dpkg-deb missing: no promtool; the tests check the rules' structure instead"; \
	elif (cd $(PROMETHEUS_DIR) && rm -rf unpacked *.deb && apt-get download -q prometheus \
		&& dpkg-deb -x prometheus_*.deb unpacked \
		&& mv unpacked/usr/bin/promtool unpacked/usr/bin/prometheus usr/bin/ && rm -rf unpacked *.deb); then \
		touch $@; \
	else \
		echo "apt-get download prometheus failed: no promtool; the tests check the rules' structure instead"; \
	fi

clean:
	rm -rf $(VENV) deploy/local/target deploy/local/node_modules .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
