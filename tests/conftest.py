"""One Kafka broker and one DynamoDB endpoint for the whole test session.

They are the ones the environment names (EXECUTION_STREAM_KAFKA_BOOTSTRAP_SERVERS and
EXECUTION_STREAM_DYNAMODB_ENDPOINT_URL), containers where a Docker engine answers, or processes: the
Java broker, and dynoxide (or moto's server, with EXECUTION_STREAM_LOCAL_DYNAMODB=moto).

Tests marked `dynamodb_engines` run once against each local DynamoDB server, dynoxide and moto's
(ids `[dynoxide]`, `[moto]`), whatever the endpoint of the rest of the session.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest

from execution_stream.dev import LOCAL_AWS_DEFAULTS
from execution_stream.dev_stack.stack import DevStack, dev_stack
from execution_stream.settings import Settings
from tests.support.dynamodb_engines import ENGINES, MARKER, LocalDynamoDBs, parametrize_by_engine

STACK_TIMINGS: dict[str, float] = {}


def pytest_configure(config: pytest.Config) -> None:
    for name, value in LOCAL_AWS_DEFAULTS.items():
        os.environ.setdefault(name, value)
    engines = ", ".join(ENGINES)
    config.addinivalue_line("markers", f"{MARKER}: runs once against each local DynamoDB server ({engines})")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    started = time.monotonic()
    with dev_stack(Settings(), tmp_path_factory.mktemp("stack")) as running:
        STACK_TIMINGS["start_seconds"] = time.monotonic() - started
        yield running


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_by_engine(metafunc)


@pytest.fixture(scope="session")
def local_dynamodbs(stack: DevStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDynamoDBs]:
    servers = LocalDynamoDBs(stack, tmp_path_factory.mktemp("dynamodb-engines"))
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def stack_settings(stack: DevStack, request: pytest.FixtureRequest) -> Settings:
    """The session's endpoints; for a `dynamodb_engines` test, the DynamoDB server of its engine."""
    endpoint = stack.endpoints.dynamodb_endpoint_url
    engine: str | None = getattr(request, "param", None)
    if engine is not None:
        endpoint = request.getfixturevalue("local_dynamodbs").endpoint_url(engine)
    return Settings(
        kafka_bootstrap_servers=stack.endpoints.kafka_bootstrap_servers,
        dynamodb_endpoint_url=endpoint,
    )


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def isolated_settings(stack_settings: Settings, unique: str) -> Settings:
    """Settings whose table and topic names belong to this test alone (the changelog topics too: they
    are named after the consumer group)."""
    names = {
        f: f"{getattr(stack_settings, f)}-{unique}"
        for f in Settings.model_fields
        if f.startswith("topic_") or f == "consumer_group"
    }
    return stack_settings.model_copy(update={**names, "dynamodb_table": f"Executions-{unique}"})


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if "start_seconds" in STACK_TIMINGS:
        terminalreporter.write_line(f"local stack started in {STACK_TIMINGS['start_seconds']:.1f}s")
