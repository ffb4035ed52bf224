"""End-to-end throughput and latency of the worker, and the API's list against a bare Query, as
ratios against what Kafka and each DynamoDB endpoint allow, for every endpoint in one run.

    python -m bench [--n 1000] [--endpoints dynoxide,moto] [--api-items 10000] [--profile]

One broker (EXECUTION_STREAM_KAFKA_BOOTSTRAP_SERVERS, or a local Kafka 4 broker started for the
run) and K measured once; then each endpoint in turn (dynoxide's and moto's servers, started and
stopped one after the other, or only the one EXECUTION_STREAM_DYNAMODB_ENDPOINT_URL names): D,
P, latency, requests per execution, the API comparison. The backlog phase runs on the first
endpoint only. Prints one table with a column per endpoint on standard output (progress goes to
standard error) and writes every figure to bench/results/latest.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import re
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.api_comparison import api_comparison
from bench.backlog import Backlog, backlog_phase
from bench.dynamodb_ceiling import dynamodb_ceiling
from bench.endpoints import Endpoint, endpoint_names, kafka_broker, running_endpoint, versions
from bench.kafka_ceiling import kafka_ceiling
from bench.pipeline_run import pipeline_run
from bench.profiling import PROFILED, Profiler
from bench.report import RESULTS, EndpointResults, Results, write_json
from bench.report_text import backlog_table, details, table
from bench.request_count import count_requests, countable
from execution_stream.dev import LOCAL_AWS_DEFAULTS
from execution_stream.settings import Settings
from tests.support.ledger import trigger_record

BUSY_LOAD = 1.0
COUNTED_TRIGGERS = 200


def _numbers(text: str) -> list[int]:
    return [int(c) for c in text.split(",")]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--n", type=int, default=1000, help="executions for D and P (default 1000)")
    add(
        "--endpoints",
        type=lambda t: t.split(","),
        default=["dynoxide", "moto"],
        help="local DynamoDB servers measured, in this order (default dynoxide,moto)",
    )
    add("--k-factor", type=int, default=10, help="K moves N times this many records")
    add("--latency-n", type=int, help="triggers in P's latency phase (default N/2)")
    add(
        "--count-n",
        type=int,
        help=f"triggers whose DynamoDB requests are counted (default {COUNTED_TRIGGERS})",
    )
    add("--tenants", type=int, default=8, help="tenants the triggers are spread over")
    add(
        "--concurrency",
        type=_numbers,
        default=[4, 8, 16, 32],
        help="conditional PutItem concurrencies tried for D (default 4,8,16,32)",
    )
    add(
        "--backlog",
        type=int,
        default=10_000,
        help="triggers of one tenant in the backlog phase, on the first endpoint (0: skip it)",
    )
    add(
        "--api-items", type=int, default=10_000, help="executions of the tenant the API lists (default 10000)"
    )
    add("--api-connections", type=int, default=4, help="requests in flight against the API and the Query")
    add("--api-seconds", type=float, default=10.0, help="seconds each of the API and the Query is loaded")
    add("--profile", action="store_true", help="py-spy the worker (and moto) during P")
    add("--work-dir", type=Path, help="where logs and profiles go (default: a temp dir)")
    add("--output", type=Path, default=RESULTS, help="the JSON file written")
    return parser.parse_args()  # fmt: skip


async def measure_endpoint(
    options: argparse.Namespace, base: Settings, endpoint: Endpoint, log_dir: Path
) -> EndpointResults:
    settings = base.model_copy(update={"dynamodb_endpoint_url": endpoint.url})
    n, process = options.n, endpoint.process
    d_settings = settings.model_copy(update={"dynamodb_table": f"bench-d-{uuid.uuid4().hex[:8]}"})
    dynamodb = await dynamodb_ceiling(d_settings, n, options.concurrency, process)
    names = PROFILED if endpoint.python_server else ("worker",)
    pipeline = await pipeline_run(
        settings,
        count=n,
        latency_count=options.latency_n or max(n // 2, 100),
        tenant_count=options.tenants,
        log_dir=log_dir,
        dynamodb=process,
        request_log=endpoint.request_log,
        profiler=Profiler(log_dir if options.profile else None, names),
    )
    counted = min(options.count_n or COUNTED_TRIGGERS, n)
    requests = None
    if countable(endpoint.url):
        requests = await count_requests(settings, counted, options.tenants, log_dir)
    api = await api_comparison(
        settings,
        items=options.api_items,
        connections=options.api_connections,
        seconds=options.api_seconds,
        log_dir=log_dir,
        dynamodb=process,
    )
    return EndpointResults(endpoint.label, endpoint.description, dynamodb, pipeline, requests, api)


def directory_for(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "endpoint"


def measure(options: argparse.Namespace, settings: Settings, names: list[str], work_dir: Path) -> Results:
    records = options.n * options.k_factor
    triggers = [trigger_record(f"bench-tenant-{i % options.tenants}", i) for i in range(records)]
    kafka = asyncio.run(kafka_ceiling(settings.kafka_bootstrap_servers, triggers, settings.kafka_partitions))
    measured: list[EndpointResults] = []
    backlog: Backlog | None = None
    for name in names:
        log_dir = work_dir / directory_for(name)
        log_dir.mkdir(parents=True, exist_ok=True)
        print(f"-- {name}: starting; logs in {log_dir}", file=sys.stderr)
        with running_endpoint(name, log_dir) as endpoint:
            measured.append(asyncio.run(measure_endpoint(options, settings, endpoint, log_dir)))
            if not backlog and options.backlog > 0:
                print(f"-- backlog phase on {name} only (the first endpoint)", file=sys.stderr)
                on_endpoint = settings.model_copy(update={"dynamodb_endpoint_url": endpoint.url})
                backlog = asyncio.run(backlog_phase(on_endpoint, options.backlog, log_dir))
    return Results(options.n, kafka, measured, backlog, {})


def context(
    options: argparse.Namespace, results: Results, kafka: str, work_dir: Path, load_before: tuple[float, ...]
) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "kafka": kafka,
        "endpoints": {e.label: e.description for e in results.endpoints},
        "backlog_endpoint": results.endpoints[0].label if results.backlog is not None else None,
        "versions": versions(),
        "options": {
            name: str(value) if isinstance(value, Path) else value for name, value in vars(options).items()
        },
        "work_dir": str(work_dir),
    }


def main() -> int:
    options = arguments()
    for name, value in LOCAL_AWS_DEFAULTS.items():
        os.environ.setdefault(name, value)
    # aiokafka logs, then retries, while fresh topics elect leaders and the first group finds its
    # coordinator; what does not heal still ends the run with an exception.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    work_dir = options.work_dir or Path(tempfile.mkdtemp(prefix="bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    if load_before[0] > BUSY_LOAD:
        print(f"note: load average {load_before[0]:.2f} before the run: figures may be low", file=sys.stderr)
    started = time.monotonic()
    settings = Settings()
    names = endpoint_names(settings, options.endpoints)
    with kafka_broker(settings, work_dir / "kafka") as (bootstrap_servers, kafka):
        settings = settings.model_copy(update={"kafka_bootstrap_servers": bootstrap_servers})
        print(f"broker ready in {time.monotonic() - started:.0f}s; logs in {work_dir}", file=sys.stderr)
        results = measure(options, settings, names, work_dir)
    run = context(options, results, kafka, work_dir, load_before)
    results = replace(results, context=run | {"seconds": round(time.monotonic() - started)})
    print(table(results))
    print()
    print(backlog_table(results))
    print()
    print(details(results))
    write_json(results, options.output)
    print(f"\nwritten to {options.output} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
