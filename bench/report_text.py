"""The run on standard output: one table with a column per endpoint, the backlog phase, then the
details of each endpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.api_requests import Load
from bench.dynamodb_ceiling import Rate
from bench.report import GOALS, EndpointResults, Results
from bench.request_count import COSTED

Cell = Callable[[dict[str, Any]], str]


def _optional(value: float | None, text: str) -> str:
    return "?" if value is None else text.format(value)


def _rows(results: Results) -> list[tuple[str, Cell, str, str]]:
    """(figure, its cell in each endpoint's column, its goal, what it is)."""
    k, first = results.kafka, results.endpoints[0]
    api, tenants = first.api, first.pipeline.tenants
    return [
        ("N", lambda f: f"{f['N']}", "", f"executions for D and P; {k.records} records for K"),
        ("K", lambda f: f"{f['K']:.0f} rec/s", "", "one broker, measured once: aiokafka get, send, commit"),
        ("D", lambda f: f"{f['D']:.0f} items/s", "", "conditional PutItem, at its best concurrency"),
        ("P", lambda f: f"{f['P']:.1f} exec/s", "", f"worker, trigger -> runner-jobs, {tenants} tenants"),
        ("P/D", lambda f: f"{f['P/D']:.2f}", GOALS["P/D"].text, "at most 0.5 with 2 writes an execution"),
        ("P/D_mix", lambda f: f"{f['P/D_mix']:.2f}", "",
         "P over the endpoint's rate for its requests counted"),
        ("worker CPU / execution", lambda f: _optional(f["worker_cpu_ms_per_execution"], "{:.1f} ms"),
         GOALS["worker_cpu_ms_per_execution"].text, "during P's throughput phase"),
        ("latency p50/p95/p99", lambda f: f"{f['p50_ms']:.0f}/{f['p95_ms']:.0f}/{f['p99_ms']:.0f} ms",
         GOALS["p99_ms"].text, "trigger -> runner-jobs at P/2"),
        ("worker peak RSS", lambda f: f"{f['worker_peak_rss_mb']:.0f} MB", "", "sampled every 0.2 s in P"),
        ("requests / execution", lambda f: _optional(f["requests_per_execution"], "{:.2f}"), "",
         "DynamoDB requests, counted through a proxy (a phase of their own)"),
        ("API rate ratio", lambda f: f"{f['api_rate_ratio']:.2f}", GOALS["api_rate_ratio"].text,
         f"GET /executions over a bare Query, 20 of {api.items} items, x{api.connections}"),
        ("API p99 ratio", lambda f: f"{f['api_p99_ratio']:.2f}", GOALS["api_p99_ratio"].text,
         "the API's p99 over the Query's"),
    ]  # fmt: skip


def table(results: Results) -> str:
    figures = [e.figures(results.n, results.kafka) for e in results.endpoints]
    rows = [(name, [cell(f) for f in figures], goal, note) for name, cell, goal, note in _rows(results)]
    header = ("", [e.label for e in results.endpoints], "goal", "")
    every = [header, *rows]
    name_width = max(len(name) for name, _, _, _ in every)
    widths = [max(len(cells[i]) for _, cells, _, _ in every) for i in range(len(results.endpoints))]
    goal_width = max(len(goal) for _, _, goal, _ in every)
    lines = []
    for name, cells, goal, note in every:
        values = "  ".join(f"{cell:>{width}}" for cell, width in zip(cells, widths, strict=True))
        lines.append(f"{name:<{name_width}}  {values}  {goal:<{goal_width}}  {note}".rstrip())
    return "\n".join(lines)


def backlog_table(results: Results) -> str:
    f, b = results.backlog_figures(), results.backlog
    if f is None or b is None:
        return "backlog phase: not run (--backlog 0)"
    rows = [
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
    lines = [f"backlog phase, on {f['endpoint']} only (the first endpoint: it is long)"]
    lines += [f"{name:<{width}}  {value:>{value_width}}  {note}".rstrip() for name, value, note in rows]
    return "\n".join(lines)


def _rate(r: Rate) -> str:
    cpu = "" if r.endpoint_cpu_ms is None else f"{r.endpoint_cpu_ms:.2f} ms endpoint CPU each, "
    return f"{r.per_second:.0f}/s ({cpu}others {r.others_cores:.2f} cores)"


def _cores(cores: dict[str, float]) -> str:
    return ", ".join(f"{name} {share:.2f}" for name, share in cores.items())


def endpoint_details(e: EndpointResults) -> list[str]:
    d, p, t = e.dynamodb, e.pipeline, e.pipeline.throughput
    puts = ", ".join(f"x{c}: {_rate(r)}" for c, r in d.conditional_put.items())
    cpu_ms = ", ".join(f"{name} {ms:.1f}" for name, ms in t.cpu_ms_per_execution.items())
    lines = [
        f"{e.label}: {e.description}",
        f"  conditional PutItem by concurrency: {puts}",
        f"  BatchWriteItem items: {_rate(d.batch_write)}",
        f"  GetItem (consistent): {_rate(d.consistent_get)}",
        f"  BatchGetItem (consistent, 100 keys a request) items: {_rate(d.batch_get)}",
        f"  UpdateItem -> dispatched, ReturnValues=ALL_OLD: {_rate(d.update_all_old)}",
        f"  UpdateItem -> dispatched, ReturnValues=NONE: {_rate(d.update_no_return)}",
        f"  repository.create_many x{d.create_many_concurrency}: {_rate(d.create_many)}",
        f"  D_mix, for the requests counted per execution at the rates above: {e.d_mix:.1f} executions/s; "
        f"P/D_mix = {e.p_over_bound:.2f}; for put + get + update ALL_OLD: {d.pipeline_bound():.1f}/s",
        f"  with BatchGetItem for the reads and ReturnValues=NONE: {d.batched_read_bound():.1f} "
        f"executions/s, {d.batched_read_bound() / d.conditional_put_best:.2f} of D",
        f"  latency to the `pending` event (stored by the trigger step) p50/p95: "
        f"{p.latency.stored_p50_ms:.0f} / {p.latency.stored_p95_ms:.0f} ms; max to the job "
        f"{p.latency.max_ms:.0f} ms; other processes used {p.latency.others_cores:.2f} cores meanwhile",
        f"  P by `pending` events (stored): {t.created_per_second:.1f}/s; by `dispatched` events: "
        f"{t.dispatched_per_second:.1f}/s; jobs: {p.distinct_jobs} distinct in {p.job_records} records; "
        f"{p.distinct_dispatched} dispatched",
        f"  during P's throughput phase, CPU cores: {_cores(t.cpu_cores)}",
        f"  during P's throughput phase, CPU ms per execution: {cpu_ms}",
    ]
    return lines + _requests_lines(e) + _api_lines(e)


def _requests_lines(e: EndpointResults) -> list[str]:
    r, logged = e.requests, e.pipeline.throughput.logged_requests_per_execution
    if r is None:
        lines = ["  DynamoDB requests per execution: not counted (only a plain-HTTP endpoint can be)"]
    else:
        by = ", ".join(f"{name} {n:.2f}" for name, n in r.per_execution_by_operation().items())
        details = ", ".join(f"{name} {n / r.executions:.2f}" for name, n in sorted(r.details.items()))
        uncosted = sorted(set(r.by_operation) - COSTED)
        lines = [
            f"  DynamoDB requests per execution: {r.per_execution:.2f} ({by}), {r.executions} executions",
            f"  per execution: {details or 'no UpdateItem or BatchGetItem'}"
            + (f"; not in D_mix: {', '.join(uncosted)}" if uncosted else ""),
        ]
    if logged is not None:
        lines.append(f"  requests in moto's own log during P's throughput phase, per execution: {logged:.2f}")
    return lines


def _api_lines(e: EndpointResults) -> list[str]:
    a = e.api

    def load(measured: Load, cores: dict[str, float]) -> str:
        return (
            f"  {measured.label}: {measured.requests_per_second:.1f}/s ({measured.requests} requests), "
            f"p50 {measured.p50_ms:.1f} ms, p99 {measured.p99_ms:.1f} ms; CPU cores: {_cores(cores)}"
        )

    return [
        f"  API comparison: {a.items} items of one tenant stored at {a.store_items_per_second:.0f} items/s "
        f"(BatchWriteItem); {a.connections} connections, {a.api.seconds:.1f} / {a.query.seconds:.1f} s",
        load(a.api, a.api_cpu_cores),
        load(a.query, a.query_cpu_cores),
        f"  API / Query: rate {a.rate_ratio:.2f}, p50 {a.p50_ratio:.2f}, p99 {a.p99_ratio:.2f}; "
        f"errors {a.api.errors} / {a.query.errors}",
    ]


def details(results: Results) -> str:
    return "\n\n".join("\n".join(endpoint_details(e)) for e in results.endpoints)
