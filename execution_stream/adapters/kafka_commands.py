"""Commands to the worker, sent on `execution-commands` keyed by tenant (one producer per API
process, started on the first command: the API serves reads while Kafka is away)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from execution_stream.adapters.kafka_calls import bounded, idempotent_producer, one_line
from execution_stream.domain.commands import CancelCommand, CommandsUnavailableError


class KafkaCommandPublisher:
    def __init__(self, bootstrap_servers: str, topic: str, timeout_seconds: float) -> None:
        self._servers, self._topic, self._timeout = bootstrap_servers, topic, timeout_seconds
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    async def send(self, command: CancelCommand) -> None:
        """Returns once the broker has the command (acks=all); raises CommandsUnavailableError."""
        try:
            producer = await self._started()
            value = command.model_dump_json(exclude_none=True).encode()
            await bounded(
                producer.send_and_wait(self._topic, value, key=command.tenant_id.encode()), self._timeout
            )
        except (KafkaError, OSError, TimeoutError) as error:
            raise CommandsUnavailableError(one_line(error, self._timeout)) from error

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _started(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._producer is None:
                producer = idempotent_producer(self._servers, self._timeout)
                try:
                    await bounded(producer.start(), self._timeout)
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer
