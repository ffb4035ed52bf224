"""A run's figures, by endpoint, with the goals they are held to; the same as JSON."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.api_comparison import ApiComparison
from bench.backlog import Backlog
from bench.dynamodb_ceiling import DynamoDBCeiling
from bench.endpoints import MOTO
from bench.kafka_ceiling import KafkaCeiling
from bench.pipeline_run import PipelineRun
from bench.request_count import BATCH_GET_KEYS, UPDATE_ALL_OLD, RequestCount

RESULTS = Path(__file__).parent / "results" / "latest.json"


@dataclass(frozen=True)
class Goal:
    text: str
    holds: Callable[[float, float], bool]
    bound: float
    # False: not held against moto's server (the slow endpoint, one CPython core).
    on_moto: bool = True

    def met(self, value: float | None) -> bool | None:
        return None if value is None else self.holds(value, self.bound)


# Figure -> its goal (the issue's); P/D's applies to the fast endpoint (dynoxide).
GOALS = {
    "P/D": Goal(">= 0.4 (fast endpoint)", operator.ge, 0.4, on_moto=False),
    "worker_cpu_ms_per_execution": Goal("<= 3 ms", operator.le, 3.0),
    "p99_ms": Goal("p99 <= 250 ms", operator.le, 250.0),
    "api_rate_ratio": Goal(">= 0.7", operator.ge, 0.7),
    "api_p99_ratio": Goal("<= 1.5", operator.le, 1.5),
}


def mix_bound(d: DynamoDBCeiling, r: RequestCount | None) -> float:
    """Executions/s the endpoint allows for the requests an execution costs: the requests counted,
    each at the rate D's phases measured for its kind (an UpdateItem by what it returns, a
    BatchGetItem by its keys); where they could not be counted, put + consistent get + update
    returning ALL_OLD."""
    if r is None:
        return d.pipeline_bound()
    made, all_old = r.by_operation, r.details.get(UPDATE_ALL_OLD, 0)
    seconds = (
        made.get("PutItem", 0) / d.conditional_put_best
        + made.get("GetItem", 0) / d.consistent_get.per_second
        + all_old / d.update_all_old.per_second
        + (made.get("UpdateItem", 0) - all_old) / d.update_no_return.per_second
        + r.details.get(BATCH_GET_KEYS, 0) / d.batch_get.per_second
    )
    return r.executions / seconds


@dataclass(frozen=True)
class EndpointResults:
    label: str
    description: str
    dynamodb: DynamoDBCeiling
    pipeline: PipelineRun
    # None where the endpoint could not be counted through the proxy (TLS).
    requests: RequestCount | None
    api: ApiComparison

    @property
    def p_over_d(self) -> float:
        return self.pipeline.per_second / self.dynamodb.conditional_put_best

    @property
    def d_mix(self) -> float:
        return mix_bound(self.dynamodb, self.requests)

    @property
    def p_over_bound(self) -> float:
        """P against what the endpoint allows for the requests an execution costs (`d_mix`)."""
        return self.pipeline.per_second / self.d_mix

    @property
    def worker_cpu_ms(self) -> float | None:
        return self.pipeline.throughput.cpu_ms_per_execution.get("worker")

    def figures(self, n: int, kafka: KafkaCeiling) -> dict[str, Any]:
        latency, api, requests = self.pipeline.latency, self.api, self.requests
        logged = self.pipeline.throughput.logged_requests_per_execution
        return {
            "N": n,
            "K": round(kafka.pass_through_per_second, 1),
            "D": round(self.dynamodb.conditional_put_best, 1),
            "D_batch": round(self.dynamodb.batch_write.per_second, 1),
            "D_mix": round(self.d_mix, 1),
            "P": round(self.pipeline.per_second, 1),
            "P/D": round(self.p_over_d, 3),
            "P/K": round(self.pipeline.per_second / kafka.pass_through_per_second, 4),
            "P/D_mix": round(self.p_over_bound, 3),
            "worker_cpu_ms_per_execution": _round(self.worker_cpu_ms, 2),
            "p50_ms": round(latency.p50_ms, 1),
            "p95_ms": round(latency.p95_ms, 1),
            "p99_ms": round(latency.p99_ms, 1),
            "worker_peak_rss_mb": round(self.pipeline.worker_peak_rss_mib, 1),
            "requests_per_execution": None if requests is None else round(requests.per_execution, 3),
            "requests_by_operation": None
            if requests is None
            else {name: round(v, 3) for name, v in requests.per_execution_by_operation().items()},
            "request_details": None if requests is None else requests.details,
            "logged_requests_per_execution_during_P": _round(logged, 3),
            "api_items": api.items,
            "api_connections": api.connections,
            "api_per_second": round(api.api.requests_per_second, 1),
            "query_per_second": round(api.query.requests_per_second, 1),
            "api_p50_ms": round(api.api.p50_ms, 2),
            "api_p99_ms": round(api.api.p99_ms, 2),
            "query_p50_ms": round(api.query.p50_ms, 2),
            "query_p99_ms": round(api.query.p99_ms, 2),
            "api_rate_ratio": round(api.rate_ratio, 3),
            "api_p50_ratio": round(api.p50_ratio, 3),
            "api_p99_ratio": round(api.p99_ratio, 3),
        }

    def goals_met(self, figures: dict[str, Any]) -> dict[str, bool | None]:
        """Each goal met or not; None where it does not apply or the figure is unknown."""
        return {
            name: goal.met(figures[name]) if goal.on_moto or self.label != MOTO else None
            for name, goal in GOALS.items()
        }


@dataclass(frozen=True)
class Results:
    n: int
    kafka: KafkaCeiling
    endpoints: list[EndpointResults]
    # On the first endpoint only (None with --backlog 0).
    backlog: Backlog | None
    context: dict[str, Any]

    def backlog_figures(self) -> dict[str, Any] | None:
        b = self.backlog
        if b is None:
            return None
        d = self.endpoints[0].dynamodb.conditional_put_best
        return {
            "endpoint": self.endpoints[0].label,
            "triggers": b.triggers,
            "backlog_accept_per_second": round(b.accept_per_second, 1),
            "backlog_accept_over_D": round(b.accept_per_second / d, 3),
            "admission_us": {str(a.backlog): round(a.microseconds, 1) for a in b.admissions},
            "admission_flatness": round(b.flatness, 2),
            "bytes_per_pending": round(b.bytes_per_pending),
            "bytes_per_parked": round(b.bytes_per_parked),
            "backlog_worker_peak_rss_mb": round(b.worker_peak_rss_mib, 1),
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def write_json(results: Results, path: Path = RESULTS) -> None:
    endpoints = {}
    for e in results.endpoints:
        figures = e.figures(results.n, results.kafka)
        endpoints[e.label] = {
            "description": e.description,
            "figures": figures,
            "goals_met": e.goals_met(figures),
            "dynamodb": asdict(e.dynamodb),
            "pipeline": asdict(e.pipeline),
            "requests": None if e.requests is None else asdict(e.requests),
            "api": asdict(e.api),
        }
    backlog = None
    if results.backlog is not None:
        backlog = {"figures": results.backlog_figures(), **asdict(results.backlog)}
    document = {
        "context": results.context,
        "goals": {name: goal.text for name, goal in GOALS.items()},
        "kafka": asdict(results.kafka),
        "endpoints": endpoints,
        "backlog": backlog,
    }
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
