# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
KAFKA_JARS := deploy/local/target/kafka-libs/.fetched
DYNOXIDE := deploy/local/node_modules/.installed
PROMETHEUS_DIR := deploy/local/target/prometheus
PROMTOOL := $(PROMETHEUS_DIR)/.fetched

.PHONY: run demo test lint typecheck unit integration bench clean browser

run: $(INSTALLED) $(KAFKA_JARS) $(DYNOXIDE)
	$(BIN)/execution-stream dev

demo: $(INSTALLED)
	$(BIN)/execution-stream demo

test: $(INSTALLED) $(KAFKA_JARS) $(DYNOXIDE) $(PROMTOOL) browser lint typecheck
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

# The browser tests drive Debian's Chromium through its ChromeDriver (never a downloaded browser):
# installed with apt-get where we are root; elsewhere the tests say what is missing.
BROWSER_PACKAGES := chromium chromium-driver
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		$(APT_INSTALL) $(BROWSER_PACKAGES) >/dev/null || (apt-get update -q >/dev/null && $(APT_INSTALL) $(BROWSER_PACKAGES) >/dev/null) \
		|| echo "apt-get could not install $(BROWSER_PACKAGES): the browser tests will say so"; \
	else \
		echo "no chromium and chromedriver here: install Debian's $(BROWSER_PACKAGES) (as root) for the browser tests"; \
	fi

clean:
	rm -rf $(VENV) deploy/local/target deploy/local/node_modules .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
