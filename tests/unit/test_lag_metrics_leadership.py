"""Only the group's leader publishes lag gauges; a worker that stops leading clears its own."""

from __future__ import annotations

from typing import Any

from execution_stream.operations.lag_report import PartitionLag
from execution_stream.operations.lag_status import LagStatus
from execution_stream.settings import Settings
from execution_stream.streaming.agents import Agents, Topics
from execution_stream.streaming.metrics import WorkerMetrics


class NotLeadingApp:
    def is_leader(self) -> bool:
        return False


async def no_steps() -> Any:
    raise AssertionError("publishing lag needs no step")


def lag_samples(metrics: WorkerMetrics) -> list[str]:
    return [
        sample.name
        for family in metrics.registry.collect()
        if family.name.startswith("execution_stream_consumer_lag")
        for sample in family.samples
    ]


async def test_a_worker_that_no_longer_leads_clears_the_lag_it_published() -> None:
    metrics = WorkerMetrics()
    stalled = PartitionLag("trigger-execution", 0, 10, 50, 400.0, None, LagStatus.STALL)
    metrics.set_lag([stalled])
    assert lag_samples(metrics), "the gauges were set while it led"
    agents = Agents(NotLeadingApp(), Settings(), Topics(None, {}), no_steps, metrics)  # type: ignore[arg-type]

    await agents.publish_lag_metrics()

    assert lag_samples(metrics) == []
