"""The fault suite: the worker as processes under traffic, with one fault injected per test.

Each test gets its own topics, table and consumer group on the session's broker and DynamoDB
endpoint (the broker test brings a broker of its own), a GitHub stand-in, and a `FaultRun`
that drives traffic and simulated runners and accounts for every trigger at the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from execution_stream.dev_stack.local_github import AppKey, generate_app_key
from execution_stream.settings import Settings
from tests.support.fault_run import fault_settings
from tests.support.pipeline import Pipeline, open_pipeline


@pytest.fixture(scope="session")
def fault_app_key() -> AppKey:
    return generate_app_key()


@pytest.fixture
async def fault_pipeline(
    isolated_settings: Settings, unique: str, fault_app_key: AppKey, tmp_path: Path
) -> AsyncIterator[Pipeline]:
    async with open_pipeline(fault_settings(isolated_settings, unique), fault_app_key, tmp_path) as pipeline:
        yield pipeline
