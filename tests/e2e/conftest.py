"""The worker as a process of its own, on the session's broker and DynamoDB endpoint, per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from pydantic import SecretStr

from execution_stream.adapters.dynamodb_repository import DynamoDBExecutionRepository, open_repository
from execution_stream.provisioning import provision
from execution_stream.settings import Settings
from tests.support.github_standin import GithubStandin, running_github_standin
from tests.support.pipeline import AppKey, WorkerProcess, eventually, generate_app_key

GITHUB_APP_ID = "161076"
T = TypeVar("T")


@pytest.fixture(scope="session")
def app_key() -> AppKey:
    return generate_app_key()


@dataclass
class Pipeline:
    settings: Settings
    github: GithubStandin
    repository: DynamoDBExecutionRepository
    log_dir: Path
    workers: list[WorkerProcess]

    def start_worker(self, **overrides: object) -> WorkerProcess:
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        worker = WorkerProcess(settings, self.log_dir / f"worker-{len(self.workers)}.log")
        self.workers.append(worker)
        worker.start()
        return worker

    async def eventually(self, check: Callable[[], Awaitable[T | None]], what: str, seconds: float = 60) -> T:
        """Like `eventually`, failing at once with the logs when a worker died."""

        async def alive_and(check: Callable[[], Awaitable[T | None]] = check) -> T | None:
            dead = [w for w in self.workers if w.process is not None and w.process.poll() is not None]
            if dead and not any(w.expected_exit for w in dead):
                raise AssertionError(f"a worker exited\n{self.logs()}")
            return await check()

        return await eventually(alive_and, seconds, what)

    def logs(self) -> str:
        return "\n".join(f"--- {w.log_path.name}\n{w.log_tail()}" for w in self.workers)


@pytest.fixture
def pipeline_settings(isolated_settings: Settings, unique: str) -> Settings:
    return isolated_settings.model_copy(
        update={
            "consumer_group": f"execution-stream-{unique}",
            "github_app_id": GITHUB_APP_ID,
            "asset_wait_seconds": 5.0,
            "asset_wait_check_seconds": 0.5,
            "worker_web_port": 0,
        }
    )


@asynccontextmanager
async def open_pipeline(settings: Settings, app_key: AppKey, log_dir: Path) -> AsyncIterator[Pipeline]:
    """Topics and table provisioned, a GitHub stand-in; every worker started is killed at the end."""
    async with running_github_standin(GITHUB_APP_ID, app_key.public_pem) as github:
        settings = settings.model_copy(
            update={"github_api_url": github.url, "github_app_private_key": SecretStr(app_key.private_pem)}
        )
        await provision(settings)
        async with open_repository(settings) as repository:
            running = Pipeline(settings, github, repository, log_dir, [])
            try:
                yield running
            finally:
                for worker in running.workers:
                    worker.kill()
                print(running.logs())  # pytest shows it when the test failed


@pytest.fixture
async def pipeline(pipeline_settings: Settings, app_key: AppKey, tmp_path: Path) -> AsyncIterator[Pipeline]:
    async with open_pipeline(pipeline_settings, app_key, tmp_path) as running:
        yield running
