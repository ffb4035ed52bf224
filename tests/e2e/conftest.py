"""The worker as a process of its own, on the session's broker and DynamoDB endpoint, per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from execution_stream.dev_stack.local_github import AppKey, generate_app_key
from execution_stream.settings import Settings
from tests.support.pipeline import GITHUB_APP_ID, Pipeline, open_pipeline


@pytest.fixture(scope="session")
def app_key() -> AppKey:
    return generate_app_key()


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


@pytest.fixture
async def pipeline(pipeline_settings: Settings, app_key: AppKey, tmp_path: Path) -> AsyncIterator[Pipeline]:
    async with open_pipeline(pipeline_settings, app_key, tmp_path) as running:
        yield running
