"""The API's command publisher against the real broker: a cancel lands keyed by its tenant, in the
documented shape; a broker that is away is one error to answer 503 with."""

from __future__ import annotations

import json

import pytest

from execution_stream.adapters.kafka_commands import KafkaCommandPublisher
from execution_stream.dev_stack.processes import free_loopback_port
from execution_stream.domain.commands import CancelCommand, CommandsUnavailableError
from execution_stream.provisioning import provision
from execution_stream.settings import Settings
from tests.support.pipeline import read_topic


async def test_a_cancel_lands_on_the_commands_topic_keyed_by_its_tenant(isolated_settings: Settings) -> None:
    await provision(isolated_settings)
    publisher = KafkaCommandPublisher(
        isolated_settings.kafka_bootstrap_servers, isolated_settings.topic_execution_commands, 20.0
    )
    try:
        await publisher.send(
            CancelCommand(tenant_id="tenant-a", execution_id="a" * 32, jit_event_id="event-1")
        )
        await publisher.send(CancelCommand(tenant_id="tenant-b", execution_id="b" * 32))
    finally:
        await publisher.stop()

    commands = await read_topic(isolated_settings, isolated_settings.topic_execution_commands)
    landed = sorted((r.key, json.loads(r.value)) for r in commands.records)
    assert landed == [
        (
            b"tenant-a",
            {
                "type": "cancel",
                "tenant_id": "tenant-a",
                "execution_id": "a" * 32,
                "jit_event_id": "event-1",
                "reason": "requested",
            },
        ),
        (
            b"tenant-b",
            {"type": "cancel", "tenant_id": "tenant-b", "execution_id": "b" * 32, "reason": "requested"},
        ),
    ]


async def test_a_broker_that_is_away_is_unavailable() -> None:
    publisher = KafkaCommandPublisher(f"127.0.0.1:{free_loopback_port()}", "execution-commands", 2.0)
    with pytest.raises(CommandsUnavailableError):
        await publisher.send(CancelCommand(tenant_id="tenant-a", execution_id="a" * 32))
    await publisher.stop()
