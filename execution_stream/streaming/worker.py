"""`execution-stream worker`: the composition root. It builds the Faust app, its tables and topics,
the outside systems, the steps and the agents, and runs them until SIGINT or SIGTERM."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from faust.worker import Worker

from execution_stream.adapters import kafka_fetching
from execution_stream.domain.allocation import Memory
from execution_stream.domain.dispatch import DispatchRetryPolicy
from execution_stream.domain.retries import RetryPolicy
from execution_stream.domain.scheduling import SchedulingPolicy
from execution_stream.domain.store import UpdateOutcome
from execution_stream.event_loop import use_event_loop
from execution_stream.observability.logs import configure_logging
from execution_stream.pipeline.allocations import AllocationStep, Limits
from execution_stream.pipeline.commands import CommandStep
from execution_stream.pipeline.dispatches import DispatchStep
from execution_stream.pipeline.messages import Destination
from execution_stream.pipeline.parked_triggers import ParkedTriggerStep
from execution_stream.pipeline.runner_cancels import RunnerCancels
from execution_stream.pipeline.status_updates import StatusUpdateStep
from execution_stream.pipeline.triggers import TriggerStep
from execution_stream.settings import Settings
from execution_stream.streaming import faust_fixes
from execution_stream.streaming.agent_loop import TopicRunnerJobs
from execution_stream.streaming.agents import Agents, PipelineSteps, Topics, utc_now
from execution_stream.streaming.metrics import WorkerMetrics
from execution_stream.streaming.outside_systems import Opened, OutsideSystems
from execution_stream.streaming.web import WorkerWeb
from execution_stream.topology import TABLE_ALLOCATIONS, TABLE_PARKED_TRIGGERS


def run_worker(settings: Settings) -> int:
    use_event_loop(settings.event_loop)
    faust_fixes.apply()
    configure_logging(settings.log_level)
    compose_worker(settings).execute_from_commandline()
    return 0


def compose_worker(settings: Settings) -> Worker:
    metrics = WorkerMetrics()
    kafka_fetching.on_undecodable(metrics.count_undecodable)
    app = faust_app(settings)
    topics = Topics(
        triggers=_raw_topic(app, settings.topic_trigger_execution),
        written={d: _raw_topic(app, topic_name(settings, d)) for d in Destination},
    )
    tables = Tables(
        allocations=app.Table(TABLE_ALLOCATIONS, partitions=settings.kafka_partitions),
        parked_triggers=app.Table(TABLE_PARKED_TRIGGERS, partitions=settings.kafka_partitions),
    )
    systems = OutsideSystems(settings)
    steps = StepsOnceOpen(systems, settings, tables, topics, metrics)
    Agents(app, settings, topics, steps.get, metrics).register()
    web = WorkerWeb(settings.worker_web_host, settings.worker_web_port, systems, metrics)
    loglevel = settings.log_level.lower()
    return Worker(
        app, systems, web, loglevel=loglevel, redirect_stdouts=False, override_logging=False, quiet=True
    )


def faust_app(settings: Settings) -> faust.App:
    datadir = settings.worker_data_dir or str(Path(tempfile.gettempdir()) / f"{settings.consumer_group}-data")
    return faust.App(
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


def _raw_topic(app: faust.App, name: str) -> Any:
    return app.topic(name, key_serializer="raw", value_serializer="raw")


def scheduling_policy(settings: Settings) -> SchedulingPolicy:
    return SchedulingPolicy(
        default_priority=settings.default_priority,
        event_priorities=settings.event_priorities,
        supersede_events=frozenset(settings.supersede_events),
        supersede_in_progress_events=frozenset(settings.supersede_in_progress_events),
    )


def topic_name(settings: Settings, destination: Destination) -> str:
    return {
        Destination.ALLOCATE: settings.topic_allocate_runner_resource,
        Destination.ENRICH: settings.topic_enrich_and_dispatch,
        Destination.RUNNER_JOBS: settings.topic_runner_jobs,
        Destination.EVENTS: settings.topic_execution_events,
        Destination.STATUS: settings.topic_execution_status,
        Destination.WAITING: settings.topic_trigger_waiting,
        Destination.COMMANDS: settings.topic_execution_commands,
        Destination.DLQ: settings.topic_execution_dlq,
    }[destination]


@dataclass(frozen=True)
class Tables:
    allocations: Any
    parked_triggers: Any


class StepsOnceOpen:
    """The steps, built once the outside systems they use are open."""

    def __init__(
        self,
        systems: OutsideSystems,
        settings: Settings,
        tables: Tables,
        topics: Topics,
        metrics: WorkerMetrics,
    ) -> None:
        self._systems, self._settings, self._tables, self._topics = systems, settings, tables, topics
        self._metrics = metrics
        self._steps: PipelineSteps | None = None

    async def get(self) -> PipelineSteps:
        opened = await self._systems.opened()
        if self._steps is None:
            self._steps = self._build(opened)
        return self._steps

    def _build(self, opened: Opened) -> PipelineSteps:
        settings, tables = self._settings, self._tables
        policy = scheduling_policy(settings)
        return PipelineSteps(
            triggers=TriggerStep(opened.repository, opened.assets, utc_now, policy),
            parked_triggers=ParkedTriggerStep(
                tables.parked_triggers,
                opened.repository,
                opened.assets,
                settings.asset_wait_seconds,
                utc_now,
                policy=policy,
            ),
            allocations=AllocationStep(
                tables.allocations,
                Limits(settings.default_concurrency_limit, settings.tenant_concurrency_limits),
                Memory(settings.released_memory_seconds, settings.released_memory_count),
                opened.queue_view,
                utc_now,
                aging_seconds=settings.priority_aging_seconds,
            ),
            dispatches=self._dispatch_step(opened),
            status_updates=StatusUpdateStep(
                opened.repository,
                self._count_update,
                RetryPolicy(settings.max_attempts, settings.retry_first_seconds, settings.retry_max_seconds),
                utc_now,
            ),
            commands=CommandStep(
                opened.repository, RunnerCancels(opened.github), settings.cancel_grace_seconds, utc_now
            ),
        )

    def _dispatch_step(self, opened: Opened) -> DispatchStep:
        settings, metrics = self._settings, self._metrics
        return DispatchStep(
            opened.repository,
            opened.github,
            TopicRunnerJobs(self._topics.written[Destination.RUNNER_JOBS]),
            settings.topic_execution_status,
            settings.job_timeout_seconds,
            DispatchRetryPolicy(settings.dispatch_retry_first_seconds, settings.dispatch_retry_max_seconds),
            utc_now,
            lambda runner, seconds: metrics.dispatch_seconds.labels(runner).observe(seconds),
            lambda runner: metrics.dispatches_set_aside.labels(runner).inc(),
        )

    def _count_update(self, outcome: UpdateOutcome) -> None:
        self._metrics.updates.labels(outcome.value).inc()
