"""The DynamoDB-only tests run against both local servers, dynoxide and moto's, so that a behaviour
only one of them has fails `make test`. Each server starts once per session: the stack's own where
it started that engine, another one here otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from execution_stream.dev_stack.local_dynamodb import LocalDynamoDB
from execution_stream.dev_stack.stack import LOCAL_DYNAMODB_SERVERS, DevStack

ENGINES = tuple(LOCAL_DYNAMODB_SERVERS)
MARKER = "dynamodb_engines"
# The fixture these tests receive the endpoint through (its session copy, one per engine).
PARAMETRIZED_FIXTURE = "stack_settings"


class LocalDynamoDBs:
    """One started server per engine, stopped together at the end of the session."""

    def __init__(self, stack: DevStack, work_dir: Path) -> None:
        self._stack = stack
        self._work_dir = work_dir
        self._started: dict[str, LocalDynamoDB] = {}

    def endpoint_url(self, engine: str) -> str:
        server_type = LOCAL_DYNAMODB_SERVERS[engine]
        if self._stack.dynamodb is not None and type(self._stack.dynamodb) is server_type:
            return self._stack.dynamodb.endpoint_url
        if engine not in self._started:
            server = server_type(self._work_dir / engine)
            self._started[engine] = server
            server.start()
        return self._started[engine].endpoint_url

    def stop(self) -> None:
        for server in self._started.values():
            server.stop()
        self._started.clear()


def parametrize_by_engine(metafunc: pytest.Metafunc) -> None:
    """Tests marked `dynamodb_engines` get one session-scoped `stack_settings` per engine (ids name it)."""
    if metafunc.definition.get_closest_marker(MARKER) is None:
        return
    if PARAMETRIZED_FIXTURE not in metafunc.fixturenames:
        return
    metafunc.parametrize(PARAMETRIZED_FIXTURE, ENGINES, indirect=True, scope="session")
