"""The outside systems the agents use, opened when the worker starts and closed when it stops."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import UTC, datetime

from mode import Service

from execution_stream.adapters.asset_cache import KafkaAssetCache
from execution_stream.adapters.dynamodb_client import open_client
from execution_stream.adapters.dynamodb_queue_view import DynamoDBQueueView
from execution_stream.adapters.dynamodb_repository import DynamoDBExecutionRepository, open_repository
from execution_stream.adapters.github_dispatcher import GithubActionsDispatcher
from execution_stream.domain.dispatch import DispatchRefusedError
from execution_stream.domain.enrichment import GithubWorkflowTarget
from execution_stream.pipeline.ports import GithubDispatcher
from execution_stream.settings import Settings


def utc_now() -> datetime:
    return datetime.now(UTC)


class UnconfiguredGithub:
    """Without a GitHub App, a github_actions job cannot be dispatched: it fails with the reason."""

    async def dispatch(self, target: GithubWorkflowTarget) -> None:
        raise DispatchRefusedError(
            None,
            "no GitHub App configured (EXECUTION_STREAM_GITHUB_APP_ID, _GITHUB_APP_PRIVATE_KEY)",
        )


class PipelineResources(Service):
    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self._assets: KafkaAssetCache | None = None
        self.ready = asyncio.Event()
        self._exits = AsyncExitStack()
        self._repository: DynamoDBExecutionRepository | None = None
        self._github: GithubDispatcher = UnconfiguredGithub()
        self._queue_view: DynamoDBQueueView | None = None

    @property
    def repository(self) -> DynamoDBExecutionRepository:
        if self._repository is None:
            raise RuntimeError("the pipeline's resources are not started")
        return self._repository

    @property
    def assets(self) -> KafkaAssetCache:
        if self._assets is None:
            raise RuntimeError("the pipeline's resources are not started")
        return self._assets

    @property
    def github(self) -> GithubDispatcher:
        return self._github

    @property
    def queue_view(self) -> DynamoDBQueueView:
        if self._queue_view is None:
            raise RuntimeError("the pipeline's resources are not started")
        return self._queue_view

    async def on_start(self) -> None:
        settings = self.settings
        self._repository = await self._exits.enter_async_context(open_repository(settings))
        if settings.github_app_id and settings.github_app_private_key:
            dispatcher = GithubActionsDispatcher(
                settings.github_api_url,
                settings.github_app_id,
                settings.github_app_private_key.get_secret_value(),
                max_attempts=settings.github_max_attempts,
                request_timeout_seconds=settings.github_request_timeout_seconds,
            )
            self._github = await self._exits.enter_async_context(dispatcher)
        client = await self._exits.enter_async_context(open_client(settings))
        self._queue_view = DynamoDBQueueView(
            client,
            settings.dynamodb_table,
            settings.queue_view_interval_seconds,
            concurrency=8,
            max_notes=200_000,
        )
        await self._queue_view.start()
        self._exits.push_async_callback(self._queue_view.stop)
        self._assets = KafkaAssetCache(settings.kafka_bootstrap_servers, settings.topic_assets)
        await self._assets.start()
        self._exits.push_async_callback(self._assets.stop)
        self.ready.set()

    async def on_stop(self) -> None:
        await self._exits.aclose()
