"""The Faust app: topics, tables, agents and timers, built from settings (nothing at import time).

Agents only decode, call their step, and send; the steps in `execution_stream.pipeline` decide.
Every agent runs with concurrency 1 (faust-streaming#606): parallelism comes from batches.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import faust

from execution_stream.domain.allocation import Memory
from execution_stream.domain.dispatch import DispatchRetryPolicy
from execution_stream.domain.ports import UpdateOutcome
from execution_stream.operations.lag import lag_report
from execution_stream.operations.lag_status import StatusTracker
from execution_stream.pipeline.allocations import AllocationStep, Limits
from execution_stream.pipeline.dispatches import DispatchStep
from execution_stream.pipeline.messages import (
    Destination,
    Effects,
    SourceRecord,
    allocation_message,
    waiting_message,
)
from execution_stream.pipeline.parked_triggers import ParkedTriggerStep
from execution_stream.pipeline.ports import TenantFilter
from execution_stream.pipeline.status_updates import StatusUpdateStep
from execution_stream.pipeline.triggers import TriggerStep
from execution_stream.settings import Settings
from execution_stream.streaming.agent_loop import (
    Batching,
    Sender,
    TopicRunnerJobs,
    process_batches,
    until_done,
)
from execution_stream.streaming.decoding import dead_letter_failed, decode_keyed_by_tenant
from execution_stream.streaming.faust_fixes import StalledPartitions
from execution_stream.streaming.metrics import WorkerMetrics
from execution_stream.streaming.partitions import tenant_partition
from execution_stream.streaming.resources import PipelineResources, utc_now
from execution_stream.topology import TABLE_ALLOCATIONS, TABLE_PARKED_TRIGGERS

logger = logging.getLogger(__name__)


def build_app(settings: Settings, resources: PipelineResources, metrics: WorkerMetrics) -> faust.App:
    datadir = settings.worker_data_dir or str(Path(tempfile.gettempdir()) / f"{settings.consumer_group}-data")
    app = faust.App(
        settings.consumer_group,
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap_servers.split(",")],
        store="memory://",
        autodiscover=False,
        topic_partitions=settings.kafka_partitions,
        topic_replication_factor=settings.kafka_replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.commit_interval_seconds,
        producer_acks=-1,
        web_enabled=False,
        datadir=datadir,
    )
    PipelineApp(app, settings, resources, metrics).register()
    return app


def topic_name(settings: Settings, destination: Destination) -> str:
    return {
        Destination.ALLOCATE: settings.topic_allocate_runner_resource,
        Destination.ENRICH: settings.topic_enrich_and_dispatch,
        Destination.RUNNER_JOBS: settings.topic_runner_jobs,
        Destination.EVENTS: settings.topic_execution_events,
        Destination.STATUS: settings.topic_execution_status,
        Destination.WAITING: settings.topic_trigger_waiting,
        Destination.DLQ: settings.topic_execution_dlq,
    }[destination]


@dataclass(frozen=True)
class PipelineSteps:
    triggers: TriggerStep
    parking: ParkedTriggerStep
    allocation: AllocationStep
    dispatch: DispatchStep
    status: StatusUpdateStep


class PipelineApp:
    """Registers the agents and timers on `app`; the steps are built once the resources are up."""

    def __init__(
        self, app: faust.App, settings: Settings, resources: PipelineResources, metrics: WorkerMetrics
    ) -> None:
        self.app, self.settings, self.resources, self.metrics = app, settings, resources, metrics
        self.topics = {d: self._raw_topic(topic_name(settings, d)) for d in Destination}
        self.sender = Sender(self.topics, metrics.observe_sent)
        self.allocations = app.Table(TABLE_ALLOCATIONS, partitions=settings.kafka_partitions)
        self.parked = app.Table(TABLE_PARKED_TRIGGERS, partitions=settings.kafka_partitions)
        self.batching = Batching(settings.batch_size, settings.batch_within_seconds)
        self.lag_tracker = StatusTracker()
        self.stalled_partitions = StalledPartitions()
        self._steps: PipelineSteps | None = None

    def register(self) -> None:
        agent = self.app.agent
        agent(self._raw_topic(self.settings.topic_trigger_execution), name="trigger_execution")(self.triggers)
        agent(self.topics[Destination.ENRICH], name="enrich_and_dispatch")(self.enrich_and_dispatch)
        agent(self.topics[Destination.STATUS], name="execution_status")(self.execution_status)
        agent(self.topics[Destination.ALLOCATE], name="allocate")(self.allocate)
        agent(self.topics[Destination.WAITING], name="parked_triggers")(self.parked_triggers)
        timer = self.app.timer
        timer(self.settings.asset_wait_check_seconds)(self.wake_parked_triggers)
        timer(self.settings.watchdog_interval_seconds)(self.fail_overdue_executions)
        timer(self.settings.dispatch_retry_check_seconds)(self.retry_set_aside_dispatches)
        timer(self.settings.watchdog_interval_seconds)(self.publish_pending_metrics)
        timer(self.settings.lag_metrics_interval_seconds, on_leader=True)(self.publish_lag_metrics)
        timer(self.settings.stalled_partition_check_seconds)(self.heal_stalled_partitions)

    def _raw_topic(self, name: str) -> Any:
        return self.app.topic(name, key_serializer="raw", value_serializer="raw")

    async def steps(self) -> PipelineSteps:
        await self.resources.ready.wait()
        if self._steps is None:
            self._steps = self._build_steps()
        return self._steps

    def _build_steps(self) -> PipelineSteps:
        settings, resources, metrics = self.settings, self.resources, self.metrics
        triggers = TriggerStep(resources.repository, resources.assets, utc_now)
        return PipelineSteps(
            triggers=triggers,
            parking=ParkedTriggerStep(
                self.parked,
                resources.repository,
                resources.assets,
                settings.asset_wait_seconds,
                utc_now,
            ),
            allocation=AllocationStep(
                self.allocations,
                Limits(settings.default_concurrency_limit, settings.tenant_concurrency_limits),
                Memory(settings.released_memory_seconds, settings.released_memory_count),
                resources.queue_view,
                utc_now,
            ),
            dispatch=DispatchStep(
                resources.repository,
                resources.github,
                TopicRunnerJobs(self.topics[Destination.RUNNER_JOBS]),
                settings.topic_execution_status,
                settings.job_timeout_seconds,
                DispatchRetryPolicy(
                    settings.dispatch_retry_first_seconds, settings.dispatch_retry_max_seconds
                ),
                utc_now,
                lambda runner, seconds: metrics.dispatch_seconds.labels(runner).observe(seconds),
                lambda runner: metrics.dispatches_set_aside.labels(runner).inc(),
            ),
            status=StatusUpdateStep(resources.repository, self._count_update),
        )

    def _count_update(self, outcome: UpdateOutcome) -> None:
        self.metrics.updates.labels(outcome.value).inc()

    async def triggers(self, stream: Any) -> None:
        step = (await self.steps()).triggers

        async def handle(records: Sequence[SourceRecord]) -> Effects:
            effects: Effects = await step.handle(records)
            self.metrics.triggers.inc(len(records))
            return effects

        await process_batches(stream, handle, self.sender, "trigger_execution", self.batching)

    async def enrich_and_dispatch(self, stream: Any) -> None:
        step = (await self.steps()).dispatch
        await process_batches(stream, step.handle, self.sender, "enrich_and_dispatch", self.batching)

    async def execution_status(self, stream: Any) -> None:
        step = (await self.steps()).status
        await process_batches(stream, step.handle, self.sender, "execution_status", self.batching)

    async def allocate(self, stream: Any) -> None:
        step = (await self.steps()).allocation
        async for event in stream.events():
            message = decode_keyed_by_tenant(allocation_message, event)
            if isinstance(message, Effects):
                await self.sender.send_until_done(message, "allocate")
                continue
            try:
                result, effects = step.handle(message)
            except Exception as error:
                await self.sender.send_until_done(dead_letter_failed(event, error, "allocate"), "allocate")
                continue
            # Sent before the writes are applied: the table never runs ahead of what was sent.
            await self.sender.send_until_done(effects, "allocate")
            step.commit(result)

    async def parked_triggers(self, stream: Any) -> None:
        step = (await self.steps()).parking
        async for event in stream.events():
            message = decode_keyed_by_tenant(waiting_message, event)
            if isinstance(message, Effects):
                await self.sender.send_until_done(message, "parked_triggers")
                continue
            try:
                writes, effects = await until_done(partial(step.handle, message), "parking")
            except Exception as error:
                await self.sender.send_until_done(
                    dead_letter_failed(event, error, "parked_triggers"), "parked_triggers"
                )
                continue
            await self.sender.send_until_done(effects, "parked_triggers")
            step.commit(writes)

    async def wake_parked_triggers(self) -> None:
        owns = self.owned_tenants(self.settings.topic_trigger_waiting)
        await self.sender.send_until_done(
            (await self.steps()).parking.wake_ups(owns), "parked-trigger wake-ups"
        )

    async def heal_stalled_partitions(self) -> None:
        for tp, offset in (await self.stalled_partitions.heal(self.app.consumer)).items():
            logger.warning(
                "partition stalled at a record no agent received; read again from there",
                extra={"topic": tp.topic, "partition": tp.partition, "offset": offset},
            )

    async def fail_overdue_executions(self) -> None:
        step = (await self.steps()).allocation
        owns = self.owned_tenants(self.settings.topic_allocate_runner_resource)
        await self.sender.send_until_done(step.overdue(self.settings.job_timeout_seconds, owns), "watchdog")
        await self.sender.send_until_done(step.refills(owns), "refills")

    async def retry_set_aside_dispatches(self) -> None:
        step = (await self.steps()).allocation
        owns = self.owned_tenants(self.settings.topic_allocate_runner_resource)
        await self.sender.send_until_done(step.due_retries(owns), "set-aside dispatches")

    async def publish_pending_metrics(self) -> None:
        now = utc_now().timestamp()
        queued: dict[str, int] = {}
        oldest_age: dict[str, float] = {}
        step = (await self.steps()).allocation
        owns = self.owned_tenants(self.settings.topic_allocate_runner_resource)
        for tenant, count, oldest in step.waiting_by_tenant(owns):
            queued[tenant] = count
            oldest_age[tenant] = now - oldest if oldest is not None else 0.0
        self.metrics.set_pending(queued, oldest_age)

    def owned_tenants(self, topic: str) -> TenantFilter:
        """Tenants whose partition of `topic` this worker processes now: a table also holds standby
        copies of other workers' partitions, which their own timers act on."""
        actives = {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}
        partitions = self.settings.kafka_partitions
        return lambda tenant: tenant_partition(tenant, partitions) in actives

    async def publish_lag_metrics(self) -> None:
        try:
            report = await lag_report(self.settings, [self.settings.consumer_group], self.lag_tracker)
        except Exception:
            logger.warning("measuring the group's lag failed", exc_info=True)
            return
        self.metrics.set_lag(partition for group in report.groups for partition in group.partitions)
