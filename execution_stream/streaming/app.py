"""The Faust app: topics, tables, agents and timers, built from settings (nothing at import time).

Agents only decode, call their step, and send; the steps in `execution_stream.pipeline` decide.
Every agent runs with concurrency 1 (faust-streaming#606): parallelism comes from batches.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Any

import faust
from pydantic import ValidationError

from execution_stream.domain.allocation import LeaseWindows
from execution_stream.pipeline.allocating import AllocationStep
from execution_stream.pipeline.dispatching import DispatchStep
from execution_stream.pipeline.parking import ParkingStep
from execution_stream.pipeline.records import (
    DeadLetterReason,
    Destination,
    Effects,
    ParkedTrigger,
    WakeUp,
    allocation_message,
    dead_letter,
    encode,
    waiting_message,
)
from execution_stream.pipeline.statuses import StatusStep
from execution_stream.pipeline.triggers import TriggerStep
from execution_stream.settings import Settings
from execution_stream.streaming.resources import PipelineResources, utc_now
from execution_stream.streaming.wiring import (
    Batching,
    Sender,
    TopicRunnerJobs,
    process_batches,
    source_record,
    until_done,
)

logger = logging.getLogger(__name__)


def build_app(settings: Settings, resources: PipelineResources) -> faust.App:
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
    )
    topics = {destination: _topic(app, settings, destination) for destination in Destination}
    topics_by_name = {
        "trigger": app.topic(settings.topic_trigger_execution, key_serializer="raw", value_serializer="raw"),
        "status": topics[Destination.STATUS],
        "allocate": topics[Destination.ALLOCATE],
        "enrich": topics[Destination.ENRICH],
        "waiting": topics[Destination.WAITING],
    }
    sender = Sender(topics)
    _wire(app, settings, resources, topics_by_name, sender)
    return app


def _topic(app: faust.App, settings: Settings, destination: Destination) -> Any:
    names = {
        Destination.ALLOCATE: settings.topic_allocate_runner_resource,
        Destination.ENRICH: settings.topic_enrich_and_dispatch,
        Destination.RUNNER_JOBS: settings.topic_runner_jobs,
        Destination.EVENTS: settings.topic_execution_events,
        Destination.STATUS: settings.topic_execution_status,
        Destination.WAITING: settings.topic_trigger_waiting,
        Destination.DLQ: settings.topic_execution_dlq,
    }
    return app.topic(names[destination], key_serializer="raw", value_serializer="raw")


def _steps(settings: Settings, resources: PipelineResources, runner_jobs: Any) -> dict[str, Any]:
    triggers = TriggerStep(resources.repository, resources.assets, utc_now)
    windows = LeaseWindows(
        size_seconds=settings.lease_window_seconds,
        expires_seconds=max(settings.job_timeout_seconds, settings.lease_window_seconds),
    )
    return {
        "triggers": triggers,
        "parking": ParkingStep(triggers, settings.asset_wait_seconds, utc_now),
        "allocation": AllocationStep(
            windows, settings.default_concurrency_limit, settings.tenant_concurrency_limits, utc_now
        ),
        "dispatch": DispatchStep(
            resources.repository,
            resources.github,
            TopicRunnerJobs(runner_jobs),
            settings.topic_execution_status,
            settings.job_timeout_seconds,
            utc_now,
        ),
        "status": StatusStep(resources.repository),
    }


def _wire(
    app: faust.App,
    settings: Settings,
    resources: PipelineResources,
    topics: dict[str, Any],
    sender: Sender,
) -> None:
    allocations = app.Table("allocations", partitions=settings.kafka_partitions)
    parked = app.Table("parked-triggers", partitions=settings.kafka_partitions)
    steps: dict[str, Any] = {}
    batch = Batching(settings.batch_size, settings.batch_within_seconds)

    async def ready() -> dict[str, Any]:
        await resources.ready.wait()
        if not steps:
            steps.update(_steps(settings, resources, sender.topic(Destination.RUNNER_JOBS)))
        return steps

    @app.agent(topics["trigger"], name="trigger_execution")
    async def trigger_execution(stream: Any) -> None:
        step = (await ready())["triggers"]
        await process_batches(stream, step.handle, sender, "trigger_execution", batch)

    @app.agent(topics["enrich"], name="enrich_and_dispatch")
    async def enrich_and_dispatch(stream: Any) -> None:
        step = (await ready())["dispatch"]
        await process_batches(stream, step.handle, sender, "enrich_and_dispatch", batch)

    @app.agent(topics["status"], name="execution_status")
    async def execution_status(stream: Any) -> None:
        step = (await ready())["status"]
        await process_batches(stream, step.handle, sender, "execution_status", batch)

    @app.agent(topics["allocate"], name="allocate")
    async def allocate(stream: Any) -> None:
        step = (await ready())["allocation"]
        async for event in stream.events():
            message = _decode(allocation_message, event)
            if isinstance(message, Effects):
                await sender.send_until_done(message, "allocate")
                continue
            tenant = event.message.key.decode()
            state, effects = step.handle(allocations.get(tenant), message)
            await sender.send_until_done(effects, "allocate")
            _store(allocations, tenant, state)

    @app.agent(topics["waiting"], name="parked_triggers")
    async def parked_triggers(stream: Any) -> None:
        step = (await ready())["parking"]
        async for event in stream.events():
            message = _decode(waiting_message, event)
            if isinstance(message, Effects):
                await sender.send_until_done(message, "parked_triggers")
                continue
            tenant = message.tenant_id
            waiting = [ParkedTrigger.model_validate(p) for p in parked.get(tenant) or []]
            still, effects = await until_done(partial(step.handle, waiting, message), "parking")
            await sender.send_until_done(effects, "parked_triggers")
            _store(parked, tenant, [p.model_dump(mode="json") for p in still] or None)

    @app.timer(settings.asset_wait_check_seconds)
    async def wake_parked_triggers() -> None:
        effects = Effects()
        for tenant in list(parked.keys()):
            effects.send(Destination.WAITING, tenant, encode(WakeUp(tenant_id=tenant)))
        await sender.send(effects)

    @app.timer(settings.watchdog_interval_seconds)
    async def fail_overdue_executions() -> None:
        step = (await ready())["allocation"]
        for tenant, state in list(allocations.items()):
            await sender.send(step.overdue(tenant, state, settings.job_timeout_seconds))


def _decode(adapter: Any, event: Any) -> Any:
    """The message, or the effects that dead-letter it."""
    try:
        return adapter.validate_python(json.loads(event.message.value))
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError, ValidationError) as error:
        effects = Effects()
        effects.outgoing.append(dead_letter(source_record(event), DeadLetterReason.INVALID, str(error)))
        return effects


def _store(table: Any, key: str, value: Any) -> None:
    if value is None:
        if key in table:
            del table[key]
    else:
        table[key] = value
