"""The agents and timers on the Faust app: each reads its topic through the one agent loop
(`agent_loop.run_agent`) into its step; the steps in `execution_stream.pipeline` decide.
Every agent runs with concurrency 1 (faust-streaming#606): parallelism comes from batches.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust

from execution_stream.operations.lag import lag_report
from execution_stream.operations.lag_status import StatusTracker
from execution_stream.pipeline.allocations import AllocationStep
from execution_stream.pipeline.commands import CommandStep
from execution_stream.pipeline.dispatches import DispatchStep
from execution_stream.pipeline.messages import Destination, Effects, SourceRecord
from execution_stream.pipeline.parked_triggers import ParkedTriggerStep
from execution_stream.pipeline.ports import TenantFilter
from execution_stream.pipeline.status_updates import StatusUpdateStep
from execution_stream.pipeline.triggers import TriggerStep
from execution_stream.settings import Settings
from execution_stream.streaming.agent_loop import ONE_AT_A_TIME, Batching, Sender, run_agent
from execution_stream.streaming.faust_fixes import StalledPartitions
from execution_stream.streaming.metrics import WorkerMetrics
from execution_stream.streaming.partitions import tenant_partition

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PipelineSteps:
    triggers: TriggerStep
    parked_triggers: ParkedTriggerStep
    allocations: AllocationStep
    dispatches: DispatchStep
    status_updates: StatusUpdateStep
    commands: CommandStep


@dataclass(frozen=True)
class Topics:
    """The topics the agents read: trigger-execution, and those the pipeline writes to."""

    triggers: Any
    written: Mapping[Destination, Any]


# The steps, once the outside systems they use are open.
StepsWhenReady = Callable[[], Awaitable[PipelineSteps]]


class Agents:
    """Registers the agents and timers on `app`."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        topics: Topics,
        steps: StepsWhenReady,
        metrics: WorkerMetrics,
    ) -> None:
        self.app, self.settings, self.steps, self.metrics = app, settings, steps, metrics
        self.topics = topics.written
        self.trigger_topic = topics.triggers
        self.sender = Sender(topics.written, metrics.observe_sent)
        self.batching = Batching(settings.batch_size, settings.batch_within_seconds)
        self.lag_tracker = StatusTracker()
        self.stalled_partitions = StalledPartitions()

    def register(self) -> None:
        agent, topics = self.app.agent, self.topics
        agent(self.trigger_topic, name="trigger_execution")(self.triggers)
        agent(topics[Destination.ENRICH], name="enrich_and_dispatch")(self.enrich_and_dispatch)
        agent(topics[Destination.STATUS], name="execution_status")(self.execution_status)
        agent(topics[Destination.ALLOCATE], name="allocate")(self.allocate)
        agent(topics[Destination.WAITING], name="parked_triggers")(self.parked_triggers)
        agent(topics[Destination.COMMANDS], name="execution_commands")(self.execution_commands)
        timer, settings = self.app.timer, self.settings
        timer(settings.asset_wait_check_seconds)(self.wake_parked_triggers)
        timer(settings.watchdog_interval_seconds)(self.fail_overdue_executions)
        timer(settings.dispatch_retry_check_seconds)(self.retry_set_aside_dispatches)
        timer(settings.watchdog_interval_seconds)(self.publish_pending_metrics)
        timer(settings.lag_metrics_interval_seconds)(self.publish_lag_metrics)
        timer(settings.stalled_partition_check_seconds)(self.heal_stalled_partitions)

    async def triggers(self, stream: Any) -> None:
        step = (await self.steps()).triggers

        async def counted(records: Sequence[SourceRecord]) -> Effects:
            self.metrics.triggers.inc(len(records))
            return await step.handle(records)

        await run_agent(stream, counted, self.sender, "trigger_execution", self.batching)

    async def enrich_and_dispatch(self, stream: Any) -> None:
        step = (await self.steps()).dispatches
        await run_agent(stream, step.handle, self.sender, "enrich_and_dispatch", self.batching)

    async def execution_status(self, stream: Any) -> None:
        step = (await self.steps()).status_updates
        await run_agent(stream, step.handle, self.sender, "execution_status", self.batching)

    async def allocate(self, stream: Any) -> None:
        step = (await self.steps()).allocations
        await run_agent(stream, step.handle, self.sender, "allocate", self.batching)

    async def execution_commands(self, stream: Any) -> None:
        step = (await self.steps()).commands
        await run_agent(stream, step.handle, self.sender, "execution_commands", self.batching)

    async def parked_triggers(self, stream: Any) -> None:
        step = (await self.steps()).parked_triggers
        await run_agent(stream, step.handle, self.sender, "parked_triggers", ONE_AT_A_TIME)

    async def wake_parked_triggers(self) -> None:
        step = (await self.steps()).parked_triggers
        owns = self.owned_tenants(self.settings.topic_trigger_waiting)
        await self.sender.send_until_done(step.wake_ups(owns), "parked-trigger wake-ups")

    async def heal_stalled_partitions(self) -> None:
        for tp, offset in (await self.stalled_partitions.heal(self.app.consumer)).items():
            logger.warning(
                "partition stalled at a record no agent received; read again from there",
                extra={"topic": tp.topic, "partition": tp.partition, "offset": offset},
            )

    async def fail_overdue_executions(self) -> None:
        step = (await self.steps()).allocations
        owns = self.owned_tenants(self.settings.topic_allocate_runner_resource)
        await self.sender.send_until_done(step.overdue(self.settings.job_timeout_seconds, owns), "watchdog")
        await self.sender.send_until_done(step.refills(owns), "refills")

    async def retry_set_aside_dispatches(self) -> None:
        step = (await self.steps()).allocations
        owns = self.owned_tenants(self.settings.topic_allocate_runner_resource)
        await self.sender.send_until_done(step.due_retries(owns), "set-aside dispatches")

    async def publish_pending_metrics(self) -> None:
        now = utc_now().timestamp()
        queued: dict[str, int] = {}
        oldest_age: dict[str, float] = {}
        step = (await self.steps()).allocations
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
        """The leader publishes the group's lag; any other worker clears what it published while it led,
        so that no stale gauge keeps an alert firing."""
        if not self.app.is_leader():
            self.metrics.set_lag(())
            return
        try:
            report = await lag_report(self.settings, [self.settings.consumer_group], self.lag_tracker)
        except Exception:
            logger.warning("measuring the group's lag failed", exc_info=True)
            return
        self.metrics.set_lag(partition for group in report.groups for partition in group.partitions)
