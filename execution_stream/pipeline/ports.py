"""What the pipeline steps need besides the execution repository."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from execution_stream.domain.allocation import Queued, RunnerLine
from execution_stream.domain.enrichment import DispatchedJob, GithubWorkflowTarget
from execution_stream.domain.models import Asset
from execution_stream.domain.trace import TraceContext


class AssetLookup(Protocol):
    def get(self, asset_id: str) -> Asset | None: ...


class GithubDispatcher(Protocol):
    async def dispatch(self, target: GithubWorkflowTarget) -> None: ...


class RunnerJobPublisher(Protocol):
    """Publishes a job for a topic-fed runner, with its trace context, and returns once the broker
    has it."""

    async def publish(self, job: DispatchedJob, trace: TraceContext) -> None: ...


class QueueView(Protocol):
    """Where users see the queue: notes taken without waiting, shown within about a second."""

    def queued(self, queued: Queued) -> None: ...

    def line_changed(self, tenant_id: str, runner: str, line: RunnerLine, limit: int) -> None: ...


class NoQueueView:
    def queued(self, queued: Queued) -> None:
        return None

    def line_changed(self, tenant_id: str, runner: str, line: RunnerLine, limit: int) -> None:
        return None


# Which tenants a timer acts on: those whose partitions this worker processes now.
TenantFilter = Callable[[str], bool]


def every_tenant(tenant: str) -> bool:
    return True
