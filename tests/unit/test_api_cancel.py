"""POST /executions/{execution_id}/cancel: 202 with the command sent, 404, 409, 400, 401, 503."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from execution_stream.domain.commands import CancelCommand, CommandsUnavailableError
from execution_stream.domain.models import ExecutionStatus
from tests.support.api import bearer, running_api
from tests.support.factories import execution
from tests.support.fake_store import FakeStore

PENDING = execution("tenant-a", 1)
COMPLETED = execution("tenant-a", 2).model_copy(update={"status": ExecutionStatus.COMPLETED})


class RecordingCommands:
    def __init__(self, available: bool = True) -> None:
        self.sent: list[CancelCommand] = []
        self.available = available

    async def send(self, command: CancelCommand) -> None:
        if not self.available:
            raise CommandsUnavailableError("broker away")
        self.sent.append(command)


@pytest.fixture
def commands() -> RecordingCommands:
    return RecordingCommands()


@pytest.fixture
async def client(commands: RecordingCommands) -> AsyncIterator[aiohttp.ClientSession]:
    async with running_api(FakeStore([PENDING, COMPLETED]), commands=commands) as session:
        yield session


async def cancel(
    client: aiohttp.ClientSession, execution_id: str, tenant: str | None = "tenant-a"
) -> tuple[int, dict[str, object]]:
    headers = bearer(tenant) if tenant is not None else {}
    async with client.post(f"/executions/{execution_id}/cancel", headers=headers) as response:
        return response.status, await response.json()


async def test_a_cancel_is_accepted_and_sent_as_a_command(
    client: aiohttp.ClientSession, commands: RecordingCommands
) -> None:
    status, body = await cancel(client, PENDING.execution_id)

    assert (status, body) == (
        202,
        {"execution_id": PENDING.execution_id, "status": "pending", "cancel": "requested"},
    )
    [command] = commands.sent
    assert (command.tenant_id, command.execution_id, command.jit_event_id, command.reason) == (
        "tenant-a",
        PENDING.execution_id,
        PENDING.jit_event_id,
        "requested",
    )


async def test_a_final_execution_is_a_conflict(
    client: aiohttp.ClientSession, commands: RecordingCommands
) -> None:
    status, body = await cancel(client, COMPLETED.execution_id)
    assert status == 409
    assert body["error"] == {
        "code": "already_final",
        "message": f"execution {COMPLETED.execution_id!r} is already completed",
    }
    assert commands.sent == []


@pytest.mark.parametrize(
    ("execution_id", "tenant", "expected"),
    [
        ("0" * 32, "tenant-a", (404, "not_found")),
        (PENDING.execution_id, "tenant-b", (404, "not_found")),
        ("not-an-id", "tenant-a", (400, "invalid_execution_id")),
        (PENDING.execution_id, None, (401, "unauthorized")),
    ],
)
async def test_an_unknown_another_tenants_a_malformed_id_or_no_token_is_refused(
    client: aiohttp.ClientSession,
    commands: RecordingCommands,
    execution_id: str,
    tenant: str | None,
    expected: tuple[int, str],
) -> None:
    status, body = await cancel(client, execution_id, tenant)
    assert (status, body["error"]["code"]) == expected  # type: ignore[index]
    assert commands.sent == []


async def test_a_broker_away_is_a_503_to_try_again(
    client: aiohttp.ClientSession, commands: RecordingCommands
) -> None:
    commands.available = False
    async with client.post(f"/executions/{PENDING.execution_id}/cancel", headers=bearer()) as response:
        assert (response.status, response.headers["Retry-After"]) == (503, "1")
        assert (await response.json())["error"]["code"] == "commands_unavailable"
