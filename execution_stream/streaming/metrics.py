"""The service's Prometheus metrics, in a registry of their own (names follow Prometheus' rules)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from execution_stream.adapters.kafka_fetching import UndecodableBatch
from execution_stream.domain.models import ExecutionEvent
from execution_stream.domain.timestamps import parse_timestamp
from execution_stream.operations.lag_report import PartitionLag
from execution_stream.operations.lag_status import LagStatus
from execution_stream.pipeline.messages import Destination, Outgoing
from execution_stream.pipeline.retrying import store_access_pauses

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
OTHER_TENANTS = "other"
COUNTED_STATUSES = {"pending": "created", "dispatched": "dispatched", "completed": "completed"}
COUNTED_STATUSES |= {"failed": "failed", "canceled": "canceled"}


class DependencyPauses(Collector):
    """The pipeline's pauses because DynamoDB refused the service, read from the tally the pauses
    keep (pipeline/retrying.py) whenever the metrics are scraped."""

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(
            "execution_stream_dependency_pauses",
            "Backoff pauses because a dependency refused the service itself (credentials, IAM, a "
            "missing table): an operator's incident; records wait meanwhile. By dependency and error code.",
            labels=["dependency", "reason"],
        )
        for code, count in sorted(store_access_pauses.items()):
            family.add_metric(["dynamodb", code], count)
        yield family


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    top_tenants: int = 20

    def __post_init__(self) -> None:
        r = self.registry
        self.triggers = Counter("execution_stream_triggers_consumed", "Trigger records consumed.", registry=r)
        self.executions = Counter(
            "execution_stream_executions",
            "Execution status changes stored, by change (created, dispatched, completed, failed, canceled, "
            "and retried: pending again for its next attempt).",
            ["change", "runner"],
            registry=r,
        )
        self.dead_letters = Counter(
            "execution_stream_dead_letters", "Records sent to the dead-letter topic.", ["reason"], registry=r
        )
        self.updates = Counter(
            "execution_stream_status_updates",
            "Status updates from runners, by outcome (applied, refused by the lifecycle, not_found).",
            ["outcome"],
            registry=r,
        )
        self.dispatch_seconds = Histogram(
            "execution_stream_dispatch_duration_seconds",
            "Time to hand one job to its runner.",
            ["runner"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.dispatches_set_aside = Counter(
            "execution_stream_dispatches_set_aside",
            "Jobs set aside because their runner was unavailable (e.g. a rate-limited GitHub installation).",
            ["runner"],
            registry=r,
        )
        self.undecodable_batches = Counter(
            "execution_stream_undecodable_batches",
            "Record batches that could not be decoded; their partition is held at the batch's offset.",
            ["topic", "partition"],
            registry=r,
        )
        self.trigger_to_dispatch = Histogram(
            "execution_stream_trigger_to_dispatch_seconds",
            "From the execution's creation to its dispatch.",
            ["runner"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.pending = Gauge(
            "execution_stream_pending_executions",
            "Executions waiting for a slot, per tenant (the busiest tenants, the rest as 'other').",
            ["tenant"],
            registry=r,
        )
        self.oldest_pending = Gauge(
            "execution_stream_oldest_pending_age_seconds",
            "Age of the oldest execution waiting for a slot, per tenant (busiest, then 'other').",
            ["tenant"],
            registry=r,
        )
        self.lag = Gauge(
            "execution_stream_consumer_lag", "Records not yet consumed.", ["topic", "partition"], registry=r
        )
        self.lag_seconds = Gauge(
            "execution_stream_consumer_lag_seconds",
            "Age of the oldest record not yet consumed.",
            ["topic", "partition"],
            registry=r,
        )
        self.lag_status = Gauge(
            "execution_stream_consumer_lag_status",
            "1 for the partition's current lag status (Burrow's OK, WARN, STALL, STOP, REWIND).",
            ["topic", "partition", "status"],
            registry=r,
        )
        r.register(DependencyPauses())

    def count_undecodable(self, batch: UndecodableBatch) -> None:
        self.undecodable_batches.labels(batch.topic, str(batch.partition)).inc()

    def observe_sent(self, outgoing: Iterable[Outgoing]) -> None:
        """Counts what the pipeline stored and dead-lettered, from what it publishes about it."""
        for record in outgoing:
            if record.destination is Destination.DLQ:
                reason = dict(record.headers).get("dlq.reason", b"unknown").decode()
                self.dead_letters.labels(reason).inc()
            elif record.event is not None:
                self._observe_event(record.event)

    def _observe_event(self, event: ExecutionEvent) -> None:
        change = COUNTED_STATUSES.get(event.status.value)
        if change is None:
            return
        if change == "created" and event.previous_status is not None:
            change = "retried"
        runner = event.job_runner
        self.executions.labels(change, runner).inc()
        if change == "dispatched" and event.created_at and event.attempt == 1:
            waited = parse_timestamp(event.at) - parse_timestamp(event.created_at)
            self.trigger_to_dispatch.labels(runner).observe(max(0.0, waited.total_seconds()))

    def set_lag(self, partitions: Iterable[PartitionLag]) -> None:
        self.lag.clear()
        self.lag_seconds.clear()
        self.lag_status.clear()
        for partition in partitions:
            if partition.lag is None:
                continue
            labels = (partition.topic, str(partition.partition))
            self.lag.labels(*labels).set(partition.lag)
            self.lag_seconds.labels(*labels).set(partition.time_lag_seconds or 0.0)
            if partition.status is not None:
                for status in LagStatus:
                    self.lag_status.labels(*labels, status.value).set(int(status is partition.status))

    def set_pending(self, queued: Mapping[str, int], oldest_age: Mapping[str, float]) -> None:
        """Bounded cardinality: the `top_tenants` with most waiting by name, the others summed."""
        top = set(heapq.nlargest(self.top_tenants, queued, key=lambda tenant: queued[tenant]))
        waiting: dict[str, int] = {}
        oldest: dict[str, float] = {}
        for tenant, count in queued.items():
            label = tenant if tenant in top else OTHER_TENANTS
            waiting[label] = waiting.get(label, 0) + count
            oldest[label] = max(oldest.get(label, 0.0), oldest_age.get(tenant, 0.0))
        self.pending.clear()
        self.oldest_pending.clear()
        for label, total in waiting.items():
            self.pending.labels(label).set(total)
            self.oldest_pending.labels(label).set(oldest[label])
