"""The dashboard, the alert rules and the Prometheus config as the tests read them, and promtool."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import project_root
from tests.support.promql import substitute_grafana_variables

ROOT = project_root()
DASHBOARD = ROOT / "deploy" / "grafana" / "execution-stream.json"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yaml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yaml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
README = ROOT / "README.md"
# Where `make test` unpacks Debian's prometheus package (Makefile, target $(PROMTOOL)).
FETCHED_BINARIES = ROOT / "deploy" / "local" / "target" / "prometheus" / "usr" / "bin"
WORKER_JOB = "execution-stream-worker"
API_JOB = "execution-stream-api"
ALERTS_SECTION = "Alerts and dashboard"
# Grafana's own variables, as plain PromQL durations; the dashboard's variables all become ".*".
GRAFANA_BUILTINS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
_LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,")
_HEADING = re.compile(r"^(#{1,6}) (.+)$", re.M)

Document = dict[str, Any]


def load_yaml(path: Path) -> Document:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict), f"{path}: not a mapping"
    return loaded


def dashboard() -> Document:
    loaded = json.loads(DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def panels(board: Document) -> list[Document]:
    """Every panel, those inside collapsed rows too."""
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_queries(board: Document) -> list[str]:
    return [target["expr"] for panel in panels(board) for target in panel.get("targets", [])]


def template_variables(board: Document) -> list[Document]:
    variables: list[Document] = board["templating"]["list"]
    return variables


def variable_values(board: Document) -> dict[str, str]:
    return GRAFANA_BUILTINS | {variable["name"]: ".*" for variable in template_variables(board)}


def dashboard_promql(board: Document) -> list[str]:
    """The dashboard's queries as plain PromQL, Grafana's variables substituted."""
    values = variable_values(board)
    return [substitute_grafana_variables(expr, values) for expr in dashboard_queries(board)]


def variable_query_metrics(board: Document) -> set[str]:
    """The metrics the dashboard's `label_values(metric, label)` variables read."""
    definitions = [variable.get("definition", "") for variable in template_variables(board)]
    return {name for definition in definitions for name in _LABEL_VALUES.findall(definition)}


def alert_rules() -> list[Document]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def alert_expressions() -> list[str]:
    return [str(rule["expr"]) for rule in alert_rules()]


def find_binary(name: str) -> Path | None:
    """The project's copy (fetched by `make test`), else one on PATH."""
    fetched = FETCHED_BINARIES / name
    if fetched.is_file():
        return fetched
    found = shutil.which(name)
    return Path(found) if found else None


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def readme_sections() -> dict[str, str]:
    """Each `###` heading's anchor under README's alerts section, and the text under it."""
    text = README.read_text()
    start = text.index(f"\n## {ALERTS_SECTION}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    headings = list(_HEADING.finditer(section))
    found = {}
    for index, heading in enumerate(headings):
        if heading.group(1) == "###":
            stop = headings[index + 1].start() if index + 1 < len(headings) else len(section)
            found[github_anchor(heading.group(2))] = section[heading.end() : stop].strip()
    return found
