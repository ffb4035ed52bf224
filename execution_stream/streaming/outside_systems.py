"""The outside systems the steps use, opened when the worker starts and closed when it stops."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass

from mode import Service

from execution_stream.adapters.asset_cache import KafkaAssetCache
from execution_stream.adapters.dynamodb_client import open_client
from execution_stream.adapters.dynamodb_queue_view import DynamoDBQueueView
from execution_stream.adapters.dynamodb_repository import DynamoDBExecutionRepository, open_repository
from execution_stream.adapters.github_dispatcher import GithubActionsDispatcher
from execution_stream.domain.dispatch import CancelOutcome, DispatchRefusedError, GithubRun, RunDetails
from execution_stream.domain.enrichment import GithubWorkflowTarget
from execution_stream.pipeline.ports import GithubDispatcher
from execution_stream.settings import Settings

NO_GITHUB_APP = "no GitHub App configured (EXECUTION_STREAM_GITHUB_APP_ID, _GITHUB_APP_PRIVATE_KEY)"


class UnconfiguredGithub:
    """Without a GitHub App, a github_actions job cannot be dispatched: it fails with the reason."""

    async def dispatch(self, target: GithubWorkflowTarget) -> RunDetails | None:
        raise DispatchRefusedError(None, NO_GITHUB_APP)

    async def cancel_run(self, run: GithubRun) -> CancelOutcome:
        raise DispatchRefusedError(None, NO_GITHUB_APP)


@dataclass(frozen=True)
class Opened:
    repository: DynamoDBExecutionRepository
    assets: KafkaAssetCache
    github: GithubDispatcher
    queue_view: DynamoDBQueueView


class OutsideSystems(Service):
    """DynamoDB, the asset topic and GitHub, open while the worker runs."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self._opened: asyncio.Future[Opened] | None = None
        self._exits = AsyncExitStack()

    @property
    def ready(self) -> bool:
        return self._opened is not None and self._opened.done()

    async def opened(self) -> Opened:
        """The systems, once the worker has opened them."""
        return await self._future()

    def _future(self) -> asyncio.Future[Opened]:
        if self._opened is None:
            self._opened = asyncio.get_running_loop().create_future()
        return self._opened

    async def on_start(self) -> None:
        opened = Opened(
            repository=await self._exits.enter_async_context(open_repository(self.settings)),
            assets=await self._open_assets(),
            github=await self._open_github(),
            queue_view=await self._open_queue_view(),
        )
        self._future().set_result(opened)

    async def on_stop(self) -> None:
        await self._exits.aclose()

    async def _open_assets(self) -> KafkaAssetCache:
        assets = KafkaAssetCache(self.settings.kafka_bootstrap_servers, self.settings.topic_assets)
        await assets.start()
        self._exits.push_async_callback(assets.stop)
        return assets

    async def _open_github(self) -> GithubDispatcher:
        settings = self.settings
        if not (settings.github_app_id and settings.github_app_private_key):
            return UnconfiguredGithub()
        dispatcher = GithubActionsDispatcher(
            settings.github_api_url,
            settings.github_app_id,
            settings.github_app_private_key.get_secret_value(),
            max_attempts=settings.github_max_attempts,
            request_timeout_seconds=settings.github_request_timeout_seconds,
        )
        return await self._exits.enter_async_context(dispatcher)

    async def _open_queue_view(self) -> DynamoDBQueueView:
        settings = self.settings
        client = await self._exits.enter_async_context(open_client(settings))
        queue_view = DynamoDBQueueView(
            client,
            settings.dynamodb_table,
            settings.queue_view_interval_seconds,
            concurrency=8,
            max_notes=200_000,
        )
        await queue_view.start()
        self._exits.push_async_callback(queue_view.stop)
        return queue_view
