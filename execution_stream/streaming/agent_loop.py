"""What every agent does around its step: read records, retry while an outside system is down,
send the step's effects and wait for the broker to have them, and only then acknowledge."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from execution_stream.domain.dispatch import DispatchUnavailableError
from execution_stream.domain.enrichment import DispatchedJob
from execution_stream.domain.store import RepositoryUnavailableError
from execution_stream.domain.trace import TraceContext
from execution_stream.pipeline.messages import (
    Destination,
    Effects,
    Headers,
    Outgoing,
    SourceRecord,
    Within,
    failed,
    trace_headers,
)
from execution_stream.pipeline.retrying import pause
from execution_stream.streaming.faust_fixes import as_current_event

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Faults that heal: the agent waits and tries the same records again instead of dropping them. The
# store refusing the service (RepositoryAccessError) is one: it heals when an operator acts.
TRANSIENT_FAULTS = (RepositoryUnavailableError, DispatchUnavailableError, KafkaError, OSError)
# Kafka errors that no retry heals.
PERMANENT_KAFKA_ERRORS = (MessageSizeTooLargeError,)
# What is kept of a dead letter's value when the whole would exceed the broker's limit.
DEAD_LETTER_KEEP_BYTES = 512 * 1024


def source_record(event: Any) -> SourceRecord:
    message = event.message
    return SourceRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
        headers=_headers(message.headers),
    )


def _headers(headers: Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None) -> Headers:
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    return tuple((name, value) for name, value in pairs if isinstance(value, bytes))


async def until_done(operation: Callable[[], Awaitable[T]], what: str) -> T:
    """Runs `operation` until it succeeds, backing off while a transient fault lasts."""
    attempt = 0
    while True:
        try:
            return await operation()
        except PERMANENT_KAFKA_ERRORS:
            raise
        except TRANSIENT_FAULTS as fault:
            await pause(attempt, what, fault)
            attempt += 1


class Sender:
    """Sends effects to the topics their destinations name and waits until the broker has them."""

    def __init__(
        self, topics: Mapping[Destination, Any], on_sent: Callable[[Sequence[Outgoing]], None]
    ) -> None:
        self._topics = topics
        self._on_sent = on_sent

    def topic(self, destination: Destination) -> Any:
        return self._topics[destination]

    async def send(self, effects: Effects) -> None:
        pending = []
        for outgoing in effects.outgoing:
            try:
                pending.append(await self._send_one(outgoing))
            except MessageSizeTooLargeError:
                if outgoing.destination is not Destination.DLQ:
                    raise
                pending.append(await self._send_one(_truncated(outgoing)))
        if pending:
            await asyncio.gather(*pending)
        self._on_sent(effects.outgoing)

    async def _send_one(self, outgoing: Outgoing) -> Any:
        topic = self._topics[outgoing.destination]
        key = outgoing.key.encode() if outgoing.key is not None else None
        return await topic.send(key=key, value=outgoing.value, headers=list(outgoing.headers))

    async def send_until_done(self, effects: Effects, what: str) -> None:
        await until_done(lambda: self.send(effects), what)


def _truncated(outgoing: Outgoing) -> Outgoing:
    """A dead letter too large for the broker keeps its head, and says so."""
    headers = (*outgoing.headers, ("dlq.truncated", str(len(outgoing.value)).encode()))
    return Outgoing(outgoing.destination, outgoing.key, outgoing.value[:DEAD_LETTER_KEEP_BYTES], headers)


class TopicRunnerJobs:
    """Topic-fed runners receive their jobs on runner-jobs, keyed by tenant."""

    def __init__(self, topic: Any) -> None:
        self._topic = topic

    async def publish(self, job: DispatchedJob, trace: TraceContext) -> None:
        value, headers = job.model_dump_json().encode(), list(trace_headers(trace))
        delivered = await self._topic.send(key=job.tenant_id.encode(), value=value, headers=headers)
        await delivered


@dataclass(frozen=True)
class Batching:
    size: int
    within_seconds: float


Handle = Callable[[Sequence[SourceRecord]], Awaitable[Effects]]
# One record at a time, acknowledged by the stream when the next is asked for.
ONE_AT_A_TIME = Batching(1, 0.0)


async def run_agent(stream: Any, handle: Handle, sender: Sender, what: str, batching: Batching) -> None:
    """Every agent: records decoded by the step, its effects sent and the broker's answer awaited,
    then its state writes applied, then the records acknowledged (never before they are durable).
    A batch that fails is handled again record by record, each sent and stored before the next."""
    async for events in _units(stream, batching):
        records = [source_record(event) for event in events]
        within = _within_source(records, events)
        try:
            effects = await until_done(partial(handle, records), what)
        except Exception:
            logger.exception("%s failed on a batch; handling its records one by one", what)
            for record in records:
                await _deliver(await handle_alone(record, handle, what), sender, what, within)
        else:
            await _deliver(effects, sender, what, within)


async def _deliver(effects: Effects, sender: Sender, what: str, within: Within) -> None:
    await sender.send_until_done(effects, what)
    effects.store(within)


def _within_source(records: Sequence[SourceRecord], events: Sequence[Any]) -> Within:
    """A state write is made with its record's event as faust's current event (a table write goes
    to that event's changelog partition)."""
    by_position = {(r.topic, r.partition, r.offset): e for r, e in zip(records, events, strict=True)}

    def within(source: SourceRecord | None) -> AbstractContextManager[object]:
        if source is None:
            return nullcontext()
        return as_current_event(by_position[(source.topic, source.partition, source.offset)])

    return within


async def _units(stream: Any, batching: Batching) -> AsyncIterator[list[Any]]:
    """The records to handle together, each acknowledged once the caller is done with it."""
    if batching == ONE_AT_A_TIME:
        async for event in stream.events():  # the stream acknowledges it when the next is asked for
            yield [event]
        return
    async for events in stream.noack_take(batching.size, within=batching.within_seconds):
        yield events
        for event in events:
            await stream.ack(event)


async def handle_alone(record: SourceRecord, handle: Handle, what: str) -> Effects:
    """One record alone: the one that fails for good is dead-lettered, and the partition goes on."""
    try:
        return await until_done(partial(handle, [record]), what)
    except Exception as error:
        return Effects([failed(record, error, what)])
