"""Around every step: effects sent, then state stored, then records acknowledged; a record that fails
for good is dead-lettered; a dead letter always fits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from functools import partial
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from faust.streams import current_event as faust_current_event

from execution_stream.pipeline.messages import (
    DeadLetterReason,
    Destination,
    Effects,
    Outgoing,
    SourceRecord,
    dead_letter,
)
from execution_stream.streaming.agent_loop import (
    DEAD_LETTER_KEEP_BYTES,
    ONE_AT_A_TIME,
    Batching,
    Handle,
    Sender,
    handle_alone,
    run_agent,
)


def record(offset: int, value: bytes = b"{}") -> SourceRecord:
    return SourceRecord("trigger-execution", 0, offset, b"tenant-a", value)


async def test_one_record_that_fails_for_good_alone_is_dead_lettered() -> None:
    async def handle(records: Sequence[SourceRecord]) -> Effects:
        if any(r.value == b"poison" for r in records):
            raise ValueError("cannot")
        effects = Effects()
        for r in records:
            effects.send(Destination.ALLOCATE, "tenant-a", str(r.offset).encode())
        return effects

    good = await handle_alone(record(1), handle, "test")
    effects = await handle_alone(record(2, b"poison"), handle, "test")

    assert [(o.destination, o.value) for o in good.outgoing] == [(Destination.ALLOCATE, b"1")]
    [letter] = effects.outgoing
    headers = dict(letter.headers)
    assert (letter.destination, headers["dlq.reason"], headers["dlq.offset"], letter.value) == (
        Destination.DLQ,
        b"processing_failed",
        b"2",
        b"poison",
    )
    assert b"cannot" in headers["dlq.message"]


class SizeLimitedTopic:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: list[tuple[bytes, list[tuple[str, bytes]]]] = []

    async def send(self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> Any:
        if len(value) > self.limit:
            raise MessageSizeTooLargeError("too large")
        self.sent.append((value, headers))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_a_dead_letter_too_large_for_the_broker_keeps_its_head_and_says_so() -> None:
    dlq, allocate = SizeLimitedTopic(DEAD_LETTER_KEEP_BYTES), SizeLimitedTopic(DEAD_LETTER_KEEP_BYTES)
    sent: list[Outgoing] = []
    sender = Sender({Destination.DLQ: dlq, Destination.ALLOCATE: allocate}, sent.extend)
    huge = b"x" * (DEAD_LETTER_KEEP_BYTES + 10)
    effects = Effects([dead_letter(record(5, huge), DeadLetterReason.INVALID, "too long")])

    await sender.send(effects)

    [(value, headers)] = dlq.sent
    assert value == huge[:DEAD_LETTER_KEEP_BYTES]
    assert dict(headers)["dlq.truncated"] == str(len(huge)).encode()
    with pytest.raises(MessageSizeTooLargeError):
        await sender.send(Effects([Outgoing(Destination.ALLOCATE, "tenant-a", huge)]))


class BrokerTopic:
    """A topic whose broker answers a moment after each send; the first `refusals` sends fail."""

    def __init__(self, log: list[tuple[str, int]], refusals: int = 0) -> None:
        self.log, self.refusals = log, refusals

    async def send(self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> Any:
        if self.refusals:
            self.refusals -= 1
            raise KafkaConnectionError("broker away")
        offset = int(value)
        self.log.append(("sent", offset))
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()

        def deliver() -> None:
            self.log.append(("delivered", offset))
            delivered.set_result(None)

        loop.call_later(0.01, deliver)
        return delivered


class Stream:
    """What an agent gets from faust: batches taken without acknowledgement, or events that the
    stream acknowledges when the next one is asked for."""

    def __init__(self, offsets: list[list[int]], log: list[tuple[str, int]]) -> None:
        self.batches = [[Event(message(offset)) for offset in batch] for batch in offsets]
        self.log = log

    async def noack_take(self, size: int, within: float) -> AsyncIterator[list[Any]]:
        for batch in self.batches:
            yield batch

    async def events(self) -> AsyncIterator[Any]:
        for event in (event for batch in self.batches for event in batch):
            yield event
            await self.ack(event)

    async def ack(self, event: Any) -> None:
        self.log.append(("ack", event.message.offset))


class Event:
    def __init__(self, message: SimpleNamespace) -> None:
        self.message = message


def message(offset: int) -> SimpleNamespace:
    return SimpleNamespace(
        topic="allocate-runner-resource",
        partition=0,
        offset=offset,
        key=b"t",
        value=b"{}",
        timestamp=None,
        headers=[],
    )


def storing_step(log: list[tuple[str, int]]) -> Handle:
    async def handle(records: Sequence[SourceRecord]) -> Effects:
        effects = Effects()
        for r in records:
            effects.send(Destination.ALLOCATE, "t", str(r.offset).encode())
            effects.then_store(partial(log.append, ("store", r.offset)))
        return effects

    return handle


def positions(log: list[tuple[str, int]], what: str, offsets: Sequence[int]) -> list[int]:
    return [log.index((what, offset)) for offset in offsets]


@pytest.mark.parametrize("batching", [Batching(2, 0.05), ONE_AT_A_TIME], ids=["batches", "one at a time"])
async def test_every_agent_sends_then_stores_then_acknowledges(batching: Batching) -> None:
    log: list[tuple[str, int]] = []
    batches = [[1, 2], [3, 4]] if batching != ONE_AT_A_TIME else [[1], [2], [3], [4]]
    sender = Sender({Destination.ALLOCATE: BrokerTopic(log, refusals=1)}, lambda sent: None)

    await run_agent(Stream(batches, log), storing_step(log), sender, "test", batching)

    for batch in batches:
        delivered, stored, acked = (positions(log, what, batch) for what in ("delivered", "store", "ack"))
        assert max(delivered) < min(stored), log
        assert stored == sorted(stored), log
        assert max(stored) < min(acked), log
    assert [offset for what, offset in log if what == "ack"] == [1, 2, 3, 4]
    assert [offset for what, offset in log if what == "sent"] == [1, 2, 3, 4]


async def test_a_record_that_fails_for_good_is_dead_lettered_and_stores_nothing() -> None:
    log: list[tuple[str, int]] = []
    dlq = SizeLimitedTopic(DEAD_LETTER_KEEP_BYTES)
    sender = Sender({Destination.ALLOCATE: BrokerTopic(log), Destination.DLQ: dlq}, lambda sent: None)
    storing = storing_step(log)

    async def handle(records: Sequence[SourceRecord]) -> Effects:
        if any(r.offset == 2 for r in records):
            raise ValueError("cannot")
        return await storing(records)

    await run_agent(Stream([[1, 2, 3]], log), handle, sender, "test", Batching(3, 0.05))

    assert [offset for what, offset in log if what == "store"] == [1, 3]
    assert [offset for what, offset in log if what == "ack"] == [1, 2, 3]
    assert [dict(headers)["dlq.offset"] for _, headers in dlq.sent] == [b"2"]


async def test_a_table_write_is_made_with_its_own_record_as_fausts_current_event() -> None:
    log: list[tuple[str, int]] = []
    current: list[tuple[int, int]] = []
    sender = Sender({Destination.ALLOCATE: BrokerTopic(log)}, lambda sent: None)

    def write(offset: int) -> None:
        event = faust_current_event()
        current.append((offset, event.message.offset if event is not None else -1))

    async def handle(records: Sequence[SourceRecord]) -> Effects:
        effects = Effects()
        for r in records:
            effects.send(Destination.ALLOCATE, "t", str(r.offset).encode())
            effects.then_store(partial(write, r.offset), source=r)
        return effects

    await run_agent(Stream([[1, 2, 3], [4]], log), handle, sender, "test", Batching(3, 0.05))

    assert current == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert faust_current_event() is None
