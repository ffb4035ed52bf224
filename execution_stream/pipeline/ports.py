"""What the pipeline steps need besides the execution repository."""

from __future__ import annotations

from typing import Protocol

from execution_stream.domain.enrichment import DispatchedJob, GithubWorkflowTarget
from execution_stream.domain.models import Asset


class AssetLookup(Protocol):
    def get(self, asset_id: str) -> Asset | None: ...


class GithubDispatcher(Protocol):
    async def dispatch(self, target: GithubWorkflowTarget) -> None: ...


class RunnerJobPublisher(Protocol):
    """Publishes a job for a topic-fed runner and returns once the broker has it."""

    async def publish(self, job: DispatchedJob) -> None: ...
