"""One table on standard output, and the same figures (with their details) as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.backlog import Backlog
from bench.dynamodb_ceiling import DynamoDBCeiling, Rate
from bench.kafka_ceiling import KafkaCeiling
from bench.pipeline_run import PipelineRun

RESULTS = Path(__file__).parent / "results" / "latest.json"


@dataclass(frozen=True)
class Results:
    n: int
    kafka: KafkaCeiling
    dynamodb: DynamoDBCeiling
    pipeline: PipelineRun
    backlog: Backlog
    context: dict[str, Any]

    @property
    def p_over_d(self) -> float:
        return self.pipeline.per_second / self.dynamodb.conditional_put_best

    @property
    def p_over_bound(self) -> float:
        """P against what the endpoint allows for the 3 requests an execution costs in P."""
        return self.pipeline.per_second / self.dynamodb.pipeline_bound()

    @property
    def p_over_k(self) -> float:
        return self.pipeline.per_second / self.kafka.pass_through_per_second

    def figures(self) -> dict[str, Any]:
        latency = self.pipeline.latency
        return {
            "N": self.n,
            "K": round(self.kafka.pass_through_per_second, 1),
            "D": round(self.dynamodb.conditional_put_best, 1),
            "D_batch": round(self.dynamodb.batch_write.per_second, 1),
            "P": round(self.pipeline.per_second, 1),
            "P/D": round(self.p_over_d, 3),
            "P/K": round(self.p_over_k, 4),
            "P/D_mix": round(self.p_over_bound, 3),
            "p50_ms": round(latency.p50_ms, 1),
            "p95_ms": round(latency.p95_ms, 1),
            "p99_ms": round(latency.p99_ms, 1),
            "worker_peak_rss_mb": round(self.pipeline.worker_peak_rss_mib, 1),
            "backlog_accept_per_second": round(self.backlog.accept_per_second, 1),
            "backlog_accept_over_D": round(
                self.backlog.accept_per_second / self.dynamodb.conditional_put_best, 3
            ),
            "admission_us": {str(a.backlog): round(a.microseconds, 1) for a in self.backlog.admissions},
            "admission_flatness": round(self.backlog.flatness, 2),
            "bytes_per_pending": round(self.backlog.bytes_per_pending),
            "bytes_per_parked": round(self.backlog.bytes_per_parked),
            "backlog_worker_peak_rss_mb": round(self.backlog.worker_peak_rss_mib, 1),
        }


def table(results: Results) -> str:
    f = results.figures()
    d, p, k, b = results.dynamodb, results.pipeline, results.kafka, results.backlog
    rows = [
        ("N", f"{f['N']}", f"executions for D and P; {k.records} records for K"),
        ("K", f"{f['K']:.0f} records/s", f"aiokafka getmany -> send -> commit, {k.record_bytes} B records"),
        ("D", f"{f['D']:.0f} items/s", f"conditional PutItem x{d.best_concurrency}, {d.item_bytes} B items"),
        ("D_batch", f"{f['D_batch']:.0f} items/s", "BatchWriteItem, 25 a request, x4 (reference)"),
        ("P", f"{f['P']:.1f} executions/s", f"worker, trigger -> runner-jobs, {p.tenants} tenants"),
        ("P/D", f"{f['P/D']:.2f}", "target >= 0.4; at most 0.5 with 2 writes an execution"),
        ("P/D_mix", f"{f['P/D_mix']:.2f}", "P against the endpoint's rate for put + get + update (details)"),
        ("P/K", f"{f['P/K']:.4f}", ""),
        ("latency p50/p95/p99", f"{f['p50_ms']:.0f} / {f['p95_ms']:.0f} / {f['p99_ms']:.0f} ms",
         f"trigger -> runner-jobs at {p.latency.rate_per_second:.1f}/s, {p.latency.count} triggers"),
        ("worker peak RSS", f"{f['worker_peak_rss_mb']:.0f} MB", "sampled every 0.2 s during P"),
        ("backlog accept", f"{f['backlog_accept_per_second']:.0f} triggers/s",
         f"{b.triggers} triggers of one tenant (limit 10) stored pending; "
         f"{f['backlog_accept_over_D']:.2f} of D"),
        ("admission cost", " / ".join(f"{a.microseconds:.0f}" for a in b.admissions) + " us",
         "one release admitting the next, at backlogs " + " / ".join(str(a.backlog) for a in b.admissions)
         + f"; last/first {f['admission_flatness']:.2f} (1.0 = flat)"),
        ("changelog per admission", f"{b.admissions[-1].changelog_bytes:.0f} B", "bytes the table writes"),
        ("memory per pending/parked", f"{f['bytes_per_pending']} / {f['bytes_per_parked']} B",
         "table entries, tracemalloc"),
        ("backlog worker peak RSS", f"{f['backlog_worker_peak_rss_mb']:.0f} MB", "during the accept phase"),
    ]  # fmt: skip
    width = max(len(name) for name, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    lines = [f"{name:<{width}}  {value:>{value_width}}  {note}".rstrip() for name, value, note in rows]
    return "\n".join(lines)


def details(results: Results) -> str:
    d, p, t = results.dynamodb, results.pipeline, results.pipeline.throughput

    def rate(r: Rate) -> str:
        cpu = "" if r.endpoint_cpu_ms is None else f"{r.endpoint_cpu_ms:.1f} ms endpoint CPU each, "
        return f"{r.per_second:.0f}/s ({cpu}others {r.others_cores:.2f} cores)"

    puts = ", ".join(f"x{c}: {rate(r)}" for c, r in d.conditional_put.items())
    cores = ", ".join(f"{name} {share:.2f}" for name, share in t.cpu_cores.items())
    cpu_ms = ", ".join(f"{name} {ms:.1f}" for name, ms in t.cpu_ms_per_execution.items())
    requests = t.dynamodb_requests_per_execution
    return "\n".join(
        [
            f"conditional PutItem by concurrency: {puts}",
            f"BatchWriteItem items: {rate(d.batch_write)}",
            f"GetItem (consistent): {rate(d.consistent_get)}",
            f"BatchGetItem (consistent, 100 keys a request) items: {rate(d.batch_get)}",
            f"UpdateItem -> dispatched, ReturnValues=ALL_OLD (as the pipeline): {rate(d.update_all_old)}",
            f"UpdateItem -> dispatched, ReturnValues=NONE: {rate(d.update_no_return)}",
            f"repository.create_many x{d.create_many_concurrency}: {rate(d.create_many)}",
            f"D_mix = 1/(1/put + 1/get + 1/update): {d.pipeline_bound():.1f} executions/s; "
            f"P/D_mix = {results.p_over_bound:.2f}",
            f"with BatchGetItem for the reads and ReturnValues=NONE: {d.batched_read_bound():.1f} "
            f"executions/s, {d.batched_read_bound() / d.conditional_put_best:.2f} of D",
            f"latency to the `pending` event (stored by the trigger step) p50/p95: "
            f"{p.latency.stored_p50_ms:.0f} / {p.latency.stored_p95_ms:.0f} ms; "
            f"other processes used {p.latency.others_cores:.2f} cores meanwhile",
            f"P by `pending` events (stored): {t.created_per_second:.1f}/s; "
            f"by `dispatched` events: {t.dispatched_per_second:.1f}/s; jobs: {p.distinct_jobs} distinct "
            f"in {p.job_records} records; {p.distinct_dispatched} dispatched",
            f"during P's throughput phase, CPU cores: {cores}",
            f"during P's throughput phase, CPU ms per execution: {cpu_ms}",
            "DynamoDB requests served per execution: "
            + ("unknown (endpoint not started here)" if requests is None else f"{requests:.2f}"),
        ]
    )


def write_json(results: Results, path: Path = RESULTS) -> None:
    document = {
        "figures": results.figures(),
        "kafka": asdict(results.kafka),
        "dynamodb": asdict(results.dynamodb),
        "pipeline": asdict(results.pipeline),
        "backlog": asdict(results.backlog),
        "context": results.context,
    }
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
