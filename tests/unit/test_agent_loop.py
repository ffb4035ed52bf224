"""Around every step: a record that fails for good is dead-lettered; a dead letter always fits."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from execution_stream.pipeline.messages import (
    DeadLetterReason,
    Destination,
    Effects,
    Outgoing,
    SourceRecord,
    dead_letter,
)
from execution_stream.streaming.agent_loop import DEAD_LETTER_KEEP_BYTES, Sender, handle_one_by_one


def record(offset: int, value: bytes = b"{}") -> SourceRecord:
    return SourceRecord("trigger-execution", 0, offset, b"tenant-a", value)


async def test_one_record_that_fails_for_good_is_dead_lettered_and_the_others_go_on() -> None:
    async def handle(records: Sequence[SourceRecord]) -> Effects:
        if any(r.value == b"poison" for r in records):
            raise ValueError("cannot")
        effects = Effects()
        for r in records:
            effects.send(Destination.ALLOCATE, "tenant-a", str(r.offset).encode())
        return effects

    effects = await handle_one_by_one([record(1), record(2, b"poison"), record(3)], handle, "test")

    assert [(o.destination, o.value) for o in effects.outgoing if o.destination is Destination.ALLOCATE] == [
        (Destination.ALLOCATE, b"1"),
        (Destination.ALLOCATE, b"3"),
    ]
    [letter] = [o for o in effects.outgoing if o.destination is Destination.DLQ]
    headers = dict(letter.headers)
    assert (headers["dlq.reason"], headers["dlq.offset"], letter.value) == (
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
