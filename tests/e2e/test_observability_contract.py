"""The dashboard and the alert rules against the real things: promtool, Prometheus, and /metrics of a
worker process and an API process on the session's broker and DynamoDB endpoint.

promtool and prometheus come from Debian's `prometheus` package, unpacked by `make test` into
deploy/local/target/prometheus/ (or from PATH); where they are missing, their tests skip and the
structural checks of tests/unit/test_observability_files.py are what ran.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from execution_stream.dev_stack import processes
from tests.support.api_process import running_api_process, wait_for
from tests.support.observability import (
    ALERT_TESTS,
    ALERTS,
    API_JOB,
    PROMETHEUS_CONFIG,
    ROOT,
    WORKER_JOB,
    alert_expressions,
    alert_rules,
    dashboard,
    dashboard_promql,
    find_binary,
    variable_query_metrics,
)
from tests.support.pipeline import Pipeline
from tests.support.promql import exposed_series_names, unknown_metric_names

MISSING = (
    "{} not found in deploy/local/target/prometheus/usr/bin or on PATH (`make test` unpacks it from "
    "Debian's prometheus package with apt-get): only the structural checks of "
    "tests/unit/test_observability_files.py ran"
)
START_SECONDS = 60.0
BEYOND_MICROSECONDS = re.compile(r"(\.\d{6})\d+")


@dataclass(frozen=True)
class Services:
    worker: str  # host:port of the worker's web endpoint
    api: str


@dataclass(frozen=True)
class PrometheusServer:
    url: str
    both_up_at: datetime  # rules evaluated before it saw the jobs missing


def binary(name: str) -> Path:
    found = find_binary(name)
    if found is None:
        pytest.skip(MISSING.format(name))
    return found


def promtool(*args: str) -> str:
    command = [str(binary("promtool")), *args]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=60)
    output = f"{result.stdout}{result.stderr}"
    assert result.returncode == 0, f"`promtool {' '.join(args)}` failed:\n{output}"
    return output


def test_promtool_checks_the_alert_rules() -> None:
    assert f"SUCCESS: {len(alert_rules())} rules found" in promtool("check", "rules", str(ALERTS))


def test_promtool_runs_the_alert_rules_unit_tests() -> None:
    promtool("test", "rules", str(ALERT_TESTS))


def test_promtool_checks_the_prometheus_config() -> None:
    promtool("check", "config", str(PROMETHEUS_CONFIG))


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each query, Grafana's variables substituted, as a recording rule: promtool parses each expr."""
    queries = dashboard_promql(dashboard())
    rules = [{"record": f"dashboard:query_{number}", "expr": expr} for number, expr in enumerate(queries)]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in promtool("check", "rules", str(path))


async def read(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        assert response.status == 200, f"{url}: {response.status}"
        return await response.text()


@pytest.fixture
async def services(pipeline: Pipeline, tmp_path: Path) -> AsyncIterator[Services]:
    """A worker and an API, each a process of its own, both answering on loopback."""
    worker_port = processes.free_loopback_port()
    worker = pipeline.start_worker(worker_web_port=worker_port)
    async with running_api_process(pipeline.settings, tmp_path / "api.log") as api_url:
        async with aiohttp.ClientSession() as session:
            assert worker.process is not None
            await wait_for(
                session, f"http://127.0.0.1:{worker_port}/metrics", worker.process, worker.log_path
            )
        yield Services(worker=f"127.0.0.1:{worker_port}", api=api_url.removeprefix("http://"))


async def test_every_metric_the_dashboard_and_the_alerts_name_is_on_a_running_worker_or_api(
    services: Services,
) -> None:
    async with aiohttp.ClientSession() as session:
        worker = exposed_series_names(await read(session, f"http://{services.worker}/metrics"))
        api = exposed_series_names(await read(session, f"http://{services.api}/metrics"))
    assert "execution_stream_dispatch_duration_seconds_bucket" in worker  # a histogram never observed
    assert "execution_stream_api_requests_total" in api
    expressions = [*dashboard_promql(dashboard()), *alert_expressions()]
    assert unknown_metric_names(expressions, worker | api) == {}
    assert variable_query_metrics(dashboard()) <= worker | api


def prometheus_config(services: Services, tmp_path: Path) -> Path:
    """prometheus.yml's jobs, pointed at the running processes and scraped every second."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(ALERTS)]
    targets = {WORKER_JOB: services.worker, API_JOB: services.api}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def prometheus_executable() -> Path:
    return binary("prometheus")


@pytest.fixture
async def prometheus(
    prometheus_executable: Path, services: Services, tmp_path: Path
) -> AsyncIterator[PrometheusServer]:
    """A real Prometheus scraping the worker and the API, once it has a sample of both (it skips
    before the services start where there is no prometheus)."""
    port = processes.free_loopback_port()
    log = tmp_path / "prometheus.log"
    command = [
        str(prometheus_executable),
        f"--config.file={prometheus_config(services, tmp_path)}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    process = processes.spawn(command, log)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await wait_for(session, f"{url}/-/ready", process, log)
            deadline = time.monotonic() + START_SECONDS
            while await instant(session, url, "sum by (job) (up)") != {WORKER_JOB: 1.0, API_JOB: 1.0}:
                assert time.monotonic() < deadline, f"the jobs are not both up; see {log}"
                await asyncio.sleep(0.5)
        yield PrometheusServer(url, datetime.now(UTC))
    finally:
        processes.stop(process, grace_seconds=10)


async def query(session: aiohttp.ClientSession, url: str, expr: str) -> dict[str, Any]:
    async with session.get(f"{url}/api/v1/query", params={"query": expr}) as response:
        answer: dict[str, Any] = json.loads(await response.text())
    return answer


async def instant(session: aiohttp.ClientSession, url: str, expr: str) -> dict[str, float]:
    answer = await query(session, url, expr)
    assert answer["status"] == "success", answer
    return {sample["metric"].get("job", ""): float(sample["value"][1]) for sample in answer["data"]["result"]}


def evaluated_at(rule: dict[str, Any]) -> datetime:
    """The rule's lastEvaluation (RFC 3339 in nanoseconds), to the microsecond."""
    return datetime.fromisoformat(BEYOND_MICROSECONDS.sub(r"\1", rule["lastEvaluation"]))


async def rules_evaluated_since(
    session: aiohttp.ClientSession, url: str, since: datetime
) -> list[dict[str, Any]] | None:
    async with session.get(f"{url}/api/v1/rules") as response:
        groups = (await response.json())["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    return rules if all(evaluated_at(rule) > since for rule in rules) else None


async def test_prometheus_evaluates_every_dashboard_query_and_alert_rule_on_the_running_services(
    prometheus: PrometheusServer,
) -> None:
    async with aiohttp.ClientSession() as session:
        for expr in dashboard_promql(dashboard()):
            answer = await query(session, prometheus.url, expr)
            assert answer["status"] == "success", (expr, answer)
        deadline = time.monotonic() + START_SECONDS
        while not (rules := await rules_evaluated_since(session, prometheus.url, prometheus.both_up_at)):
            assert time.monotonic() < deadline, "the rules were not all evaluated"
            await asyncio.sleep(0.5)
        assert {rule["name"] for rule in rules} == {rule["alert"] for rule in alert_rules()}
        assert [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"] == []
        active = [(rule["name"], rule["state"]) for rule in rules if rule["state"] != "inactive"]
        assert active == [], "a healthy worker and API raise no alert"
