"""Finding a partition stalled at a record no agent received, on a stand-in of faust's bookkeeping."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from execution_stream.streaming.faust_fixes import StalledPartitions, stalled_heads


class TP(NamedTuple):
    topic: str
    partition: int


@dataclass(frozen=True)
class InHands:
    tp: TP
    offset: int


@dataclass
class Bookkeeping:
    """The fields of faust's Consumer that the check reads, and the seek it asks for."""

    _acked: defaultdict[TP, list[int]] = field(default_factory=lambda: defaultdict(list))
    _committed_offset: dict[TP, int | None] = field(default_factory=dict)
    _unacked_messages: set[Any] = field(default_factory=set)
    seeks: list[dict[TP, int]] = field(default_factory=list)

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.seeks.append(dict(partitions))


STATUS = TP("execution-status", 4)
TRIGGERS = TP("trigger-execution", 0)


def test_a_missing_head_with_later_offsets_acknowledged_is_stalled() -> None:
    consumer = Bookkeeping()
    consumer._committed_offset[STATUS] = 1
    consumer._acked[STATUS] = [2, 3, 4]
    assert stalled_heads(consumer) == {STATUS: 1}


def test_a_head_in_an_agents_hands_or_nothing_acknowledged_is_not_stalled() -> None:
    consumer = Bookkeeping()
    consumer._committed_offset.update({STATUS: 1, TRIGGERS: 7})
    consumer._acked[STATUS] = [2, 3]
    consumer._unacked_messages.add(InHands(STATUS, 1))
    consumer._acked[TRIGGERS] = []
    assert stalled_heads(consumer) == {}


def test_consecutive_acknowledgements_from_the_committed_offset_are_not_stalled() -> None:
    consumer = Bookkeeping()
    consumer._committed_offset[STATUS] = 1
    consumer._acked[STATUS] = [1, 2, 3]
    assert stalled_heads(consumer) == {}


async def test_a_partition_is_sought_back_only_when_found_stalled_at_the_same_offset_twice() -> None:
    consumer, healer = Bookkeeping(), StalledPartitions()
    consumer._committed_offset.update({STATUS: 1, TRIGGERS: 5})
    consumer._acked.update({STATUS: [3], TRIGGERS: [9]})

    assert await healer.heal(consumer) == {}
    consumer._committed_offset[TRIGGERS] = 8  # it moved on: a new suspect, not a confirmed one
    assert await healer.heal(consumer) == {STATUS: 1}
    assert await healer.heal(consumer) == {TRIGGERS: 8}
    assert consumer.seeks == [{STATUS: 1}, {TRIGGERS: 8}]
