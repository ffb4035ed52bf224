"""End-to-end throughput and latency of the worker, as ratios against Kafka's and DynamoDB's ceilings.

    python -m bench [--n 1000] [--profile]

One run, one broker, one DynamoDB endpoint: the ones EXECUTION_STREAM_KAFKA_BOOTSTRAP_SERVERS and
EXECUTION_STREAM_DYNAMODB_ENDPOINT_URL name, or a local Kafka 4 broker and moto's server started for
the run. Prints one table on standard output (progress goes to standard error) and writes the same
figures, with their details, to bench/results/latest.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.backlog import backlog_phase
from bench.dynamodb_ceiling import dynamodb_ceiling
from bench.kafka_ceiling import kafka_ceiling
from bench.observe import started_here
from bench.pipeline_run import pipeline_run
from bench.profiling import Profiler
from bench.report import RESULTS, Results, details, table, write_json
from execution_stream.dev import LOCAL_AWS_DEFAULTS
from execution_stream.dev_stack.stack import DevStack, dev_stack
from execution_stream.settings import Settings
from tests.support.ledger import trigger_record

BUSY_LOAD = 1.0


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="executions for D and P (default 1000)")
    parser.add_argument("--k-factor", type=int, default=10, help="K moves N times this many records")
    parser.add_argument("--latency-n", type=int, help="triggers in P's latency phase (default N/2)")
    parser.add_argument("--tenants", type=int, default=8, help="tenants the triggers are spread over")
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(c) for c in text.split(",")],
        default=[4, 8, 16, 32],
        help="conditional PutItem concurrencies tried for D (default 4,8,16,32)",
    )
    parser.add_argument(
        "--backlog", type=int, default=10_000, help="triggers of one tenant in the backlog phase"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the worker and moto during P")
    parser.add_argument("--work-dir", type=Path, help="where logs and profiles go (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="the JSON file written")
    return parser.parse_args()


async def measure(
    options: argparse.Namespace, settings: Settings, stack: DevStack, work_dir: Path
) -> Results:
    n = options.n
    triggers = [trigger_record(f"bench-tenant-{i % options.tenants}", i) for i in range(n * options.k_factor)]
    kafka = await kafka_ceiling(settings.kafka_bootstrap_servers, triggers, settings.kafka_partitions)
    d_settings = settings.model_copy(update={"dynamodb_table": f"bench-d-{uuid.uuid4().hex[:8]}"})
    endpoint = started_here().get("dynamodb")
    dynamodb = await dynamodb_ceiling(d_settings, n, options.concurrency, endpoint)
    dynamodb_log = stack.dynamodb.log_path if stack.dynamodb is not None else None
    profiler = Profiler(work_dir if options.profile else None)
    pipeline = await pipeline_run(
        settings,
        count=n,
        latency_count=options.latency_n or max(n // 2, 100),
        tenant_count=options.tenants,
        log_dir=work_dir,
        dynamodb_log=dynamodb_log,
        profiler=profiler,
    )
    backlog = await backlog_phase(settings, options.backlog, work_dir)
    return Results(n, kafka, dynamodb, pipeline, backlog, {})


def context(stack: DevStack, work_dir: Path, load_before: tuple[float, float, float]) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "kafka": "started for the run"
        if stack.broker is not None
        else stack.endpoints.kafka_bootstrap_servers,
        "dynamodb": "moto server started for the run"
        if stack.dynamodb is not None
        else stack.endpoints.dynamodb_endpoint_url,
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
    with dev_stack(Settings(), work_dir / "stack") as stack:
        endpoints = stack.endpoints
        settings = Settings().model_copy(
            update={
                "kafka_bootstrap_servers": endpoints.kafka_bootstrap_servers,
                "dynamodb_endpoint_url": endpoints.dynamodb_endpoint_url,
            }
        )
        print(f"stack ready in {time.monotonic() - started:.0f}s; logs in {work_dir}", file=sys.stderr)
        results = asyncio.run(measure(options, settings, stack, work_dir))
        results = replace(results, context=context(stack, work_dir, load_before))
    print(table(results))
    print()
    print(details(results))
    write_json(results, options.output)
    print(f"\nwritten to {options.output} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
