"""The dashboard, the alert rules and the Prometheus config, checked as files (no promtool needed).

These run always; where promtool is found, tests/e2e/test_observability_contract.py also has promtool
check and test them, and checks every metric they name against a running worker and API.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from execution_stream.api.metrics import ApiMetrics
from execution_stream.streaming.metrics import WorkerMetrics
from tests.support.observability import (
    ALERT_TESTS,
    ALERTS,
    API_JOB,
    GRAFANA_BUILTINS,
    PROMETHEUS_CONFIG,
    WORKER_JOB,
    alert_expressions,
    alert_rules,
    dashboard,
    dashboard_promql,
    dashboard_queries,
    load_yaml,
    panels,
    readme_sections,
    template_variables,
    variable_query_metrics,
)
from tests.support.promql import (
    balanced,
    exposed_series_names,
    grafana_variables,
    metric_names,
    series_of_family,
    unknown_metric_names,
)

DURATION = re.compile(r"\d+[smhd]")
SEVERITIES = {"warning", "critical"}
# Grafana 11's dashboard schema; docker-compose.yml runs Grafana 12, whose schema is 41 or later.
OLDEST_SCHEMA_VERSION = 39
JOB_SELECTOR = re.compile(r'job=~?"([^"]+)"')
RANGE = re.compile(r"\[([^\]]*)\]")
DASHBOARD_RANGES = {"$__rate_interval", "$__range"}


def service_families() -> dict[str, str]:
    """Every metric family the worker and the API register: name -> type, `_created` left out."""
    exposition = b"".join(generate_latest(m.registry) for m in (WorkerMetrics(), ApiMetrics())).decode()
    families = dict(re.findall(r"^# TYPE (\S+) (\w+)$", exposition, re.M))
    return {name: kind for name, kind in families.items() if not name.endswith("_created")}


def job_names(expressions: list[str]) -> set[str]:
    return {
        job for expr in expressions for selector in JOB_SELECTOR.findall(expr) for job in selector.split("|")
    }


# --- the alert rules -------------------------------------------------------------------------------


def test_the_alert_rules_have_the_shape_prometheus_and_the_runbooks_need() -> None:
    groups = load_yaml(ALERTS)["groups"]
    assert [group["name"] for group in groups] == ["execution-stream"]
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names repeat"
    for rule in rules:
        name = rule["alert"]
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, name
        assert isinstance(rule["expr"], str), name
        assert balanced(rule["expr"]), name
        assert DURATION.fullmatch(str(rule.get("for", "0s"))), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name


def test_every_runbook_url_points_to_its_own_section_of_the_readme() -> None:
    sections = readme_sections()
    for rule in alert_rules():
        url = urlsplit(rule["annotations"]["runbook_url"])
        assert url.path.endswith("README.md"), rule["alert"]
        assert url.fragment == rule["alert"].lower(), rule["alert"]
        assert url.fragment in sections, f"README has no section #{url.fragment}"
        runbook = sections[url.fragment]
        assert len(runbook) > 200, f"#{url.fragment}: says too little to act on"
        assert "`" in runbook, f"#{url.fragment}: names no metric, command or file to look at"


def test_the_alerts_needed_are_there() -> None:
    expressions = " ".join(alert_expressions())
    for needed in (
        "execution_stream_consumer_lag_seconds",
        "execution_stream_consumer_lag_status",
        "execution_stream_dead_letters_total",
        "execution_stream_oldest_pending_age_seconds",
        "execution_stream_dependency_pauses_total",
        "execution_stream_undecodable_batches_total",
        f'up{{job="{WORKER_JOB}"}} == 0',
        f'absent(up{{job="{WORKER_JOB}"}})',
        f'up{{job="{API_JOB}"}} == 0',
        f'absent(up{{job="{API_JOB}"}})',
    ):
        assert needed in expressions, needed


def test_every_alert_has_promtool_tests_where_it_fires_and_where_it_does_not() -> None:
    cases = [case for test in load_yaml(ALERT_TESTS)["tests"] for case in test["alert_rule_test"]]
    assert load_yaml(ALERT_TESTS)["rule_files"] == [ALERTS.name]
    for name in (rule["alert"] for rule in alert_rules()):
        expected = [case["exp_alerts"] for case in cases if case["alertname"] == name]
        assert any(expected), f"{name}: no test makes it fire"
        assert [] in expected, f"{name}: no test shows it quiet"
    fired = [alert for case in cases for alert in case["exp_alerts"]]
    for alert in fired:
        assert alert["exp_labels"]["severity"] in SEVERITIES
        assert {"summary", "description", "runbook_url"} <= set(alert["exp_annotations"])


# --- the Prometheus config -------------------------------------------------------------------------


def test_the_prometheus_config_scrapes_both_jobs_and_loads_the_alert_rules() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    assert [PROMETHEUS_CONFIG.parent / name for name in config["rule_files"]] == [ALERTS]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {WORKER_JOB, API_JOB}
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in jobs.values())
    [worker_target] = jobs[WORKER_JOB]["static_configs"][0]["targets"]
    assert worker_target.endswith(":6066")


def test_the_jobs_the_rules_and_the_dashboard_name_are_the_configs() -> None:
    configured = {job["job_name"] for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}
    assert job_names(alert_expressions()) == configured
    assert job_names(dashboard_queries(dashboard())) == configured


# --- the dashboard ---------------------------------------------------------------------------------


def test_the_dashboard_reads_a_prometheus_chosen_by_its_datasource_variable() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= OLDEST_SCHEMA_VERSION
    assert board["uid"]
    assert board["title"]
    variables = {variable["name"]: variable for variable in template_variables(board)}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    source = {"type": "prometheus", "uid": "${datasource}"}
    for panel in panels(board):
        if panel["type"] != "row":
            assert panel["datasource"] == source, panel["title"]
            assert panel["targets"], panel["title"]
            assert all(target["datasource"] == source for target in panel["targets"]), panel["title"]


def test_the_dashboards_panels_have_unique_ids_and_fit_the_grid() -> None:
    every = panels(dashboard())
    assert len({panel["id"] for panel in every}) == len(every)
    for panel in every:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        refs = [target["refId"] for target in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]


def test_every_variable_a_query_uses_is_defined_and_every_range_is_grafanas() -> None:
    board = dashboard()
    defined = {variable["name"] for variable in template_variables(board)} | set(GRAFANA_BUILTINS)
    for expr in dashboard_queries(board):
        assert grafana_variables(expr) <= defined, expr
        assert set(RANGE.findall(expr)) <= DASHBOARD_RANGES, f"a fixed range in {expr}"
        assert balanced(expr), expr


def test_the_dashboard_shows_every_metric_the_worker_and_the_api_export() -> None:
    board = dashboard()
    used = {name for expr in dashboard_promql(board) for name in metric_names(expr)}
    for family, kind in service_families().items():
        assert series_of_family(family, kind) & used, f"no panel shows {family}"
    assert variable_query_metrics(board) <= set().union(
        *(series_of_family(family, kind) for family, kind in service_families().items())
    )


def test_the_dashboard_has_the_panels_sres_expect() -> None:
    queries = " ".join(dashboard_queries(dashboard()))
    for needed in (
        "sum by (change, runner) (rate(execution_stream_executions_total",
        "histogram_quantile(0.5, sum by (le) (rate(execution_stream_trigger_to_dispatch_seconds_bucket",
        "histogram_quantile(0.95, sum by (le) (rate(execution_stream_trigger_to_dispatch_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(execution_stream_trigger_to_dispatch_seconds_bucket",
        'status=~"4.."',
        'status=~"5.."',
        "execution_stream_consumer_lag_status",
        f'up{{job="{WORKER_JOB}"}}',
        f'up{{job="{API_JOB}"}}',
    ):
        assert needed in queries, needed


# --- reading PromQL and expositions (the checks above and the e2e contract rely on it) ---------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le, runner) (rate(a_bucket{runner=~"$runner"}[$__rate_interval]))', {"a_bucket"}),
        ("histogram_quantile(0.99, sum without (instance) (rate(b_bucket[5m])))", {"b_bucket"}),
        ('label_replace(up{job="x"}, "dst", "$1", "src", "(.*)")', {"up"}),
        ("a_total / on (route) group_left (tenant) b_info > bool 1e3", {"a_total", "b_info"}),
        ("a unless a offset 10m or vector(0) and Inf > nan", {"a"}),
        ("SUM(rate(c_total[1m] @ start()))", {"c_total"}),
        ('absent(d_total{reason="by (x) sum"})', {"d_total"}),
    ],
)
def test_metric_names_are_the_identifiers_that_are_not_promql_or_labels(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_a_call_of_no_promql_function_is_refused_rather_than_ignored() -> None:
    with pytest.raises(ValueError, match="no PromQL function"):
        metric_names("rates(a_total[5m])")
    with pytest.raises(ValueError, match="__name__"):
        metric_names('{__name__="a_total"}')


def test_a_query_naming_a_series_nobody_exports_is_caught() -> None:
    registry = CollectorRegistry()
    Counter("requests", "Requests.", ["route"], registry=registry)
    Histogram("latency_seconds", "Latency.", ["route"], registry=registry)
    Gauge("waiting", "Waiting.", registry=registry)
    exposed = exposed_series_names(generate_latest(registry).decode())
    good = ["rate(requests_total[5m])", "rate(latency_seconds_bucket[5m])", "waiting", "up"]
    assert unknown_metric_names(good, exposed) == {}
    bad = ["rate(requests[5m])", "rate(latency_seconds[5m])", "waiting_total", "scrape_duration_seconds"]
    assert unknown_metric_names(bad, exposed) == {
        "rate(requests[5m])": {"requests"},
        "rate(latency_seconds[5m])": {"latency_seconds"},
        "waiting_total": {"waiting_total"},
        "scrape_duration_seconds": {"scrape_duration_seconds"},
    }


def test_labelled_metrics_never_observed_count_from_their_type_lines() -> None:
    registry = CollectorRegistry()
    Histogram("latency_seconds", "Latency.", ["route"], registry=registry)
    Counter("requests", "Requests.", ["route"], registry=registry)
    exposition = generate_latest(registry).decode()
    assert "latency_seconds_bucket" not in exposition
    assert exposed_series_names(exposition) >= {
        "latency_seconds_bucket",
        "latency_seconds_count",
        "latency_seconds_sum",
        "requests_total",
    }


def test_unbalanced_brackets_are_seen() -> None:
    assert balanced('sum(rate(a{b="(("}[5m]))')
    assert not balanced("sum(rate(a[5m])")
    assert not balanced("sum(rate(a[5m)])")
