"""Finding a partition stalled at a record no agent received, on a stand-in of faust's bookkeeping."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from execution_stream.adapters.kafka_fetching import SkippedOffsets
from execution_stream.streaming.faust_fixes import StalledPartitions, commit_point, stalled_heads


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


def skipped_ranges(*ranges: tuple[int, int]) -> SkippedOffsets:
    skipped = SkippedOffsets()
    skipped.track({TRIGGERS.topic})
    for begin, end in ranges:
        skipped.add(TRIGGERS, begin, end)
    return skipped


def test_skipped_ranges_merge_and_answer_for_the_offsets_they_hold() -> None:
    skipped = skipped_ranges((5, 6), (1, 4), (4, 5), (9, 9))
    assert [skipped.end_of_range_at(TRIGGERS, offset) for offset in range(8)] == [
        None,
        6,
        6,
        6,
        6,
        6,
        None,
        None,
    ]
    skipped.forget_below(TRIGGERS, 6)
    assert skipped.partitions() == []


def test_a_topic_not_tracked_records_no_skipped_range() -> None:
    skipped = SkippedOffsets()
    skipped.add(STATUS, 1, 4)
    assert skipped.end_of_range_at(STATUS, 1) is None


def test_the_commit_point_moves_past_markers_and_aborted_records_between_and_after_acknowledgements() -> None:
    consumer = Bookkeeping()
    consumer._committed_offset[TRIGGERS] = 0
    # 0 record, 1 marker, 2-3 aborted, 4 marker, 5 record, 6 marker, 7 not read yet
    consumer._acked[TRIGGERS] = [5, 0]
    assert commit_point(consumer, TRIGGERS, skipped_ranges((1, 5), (6, 7))) == 7
    assert commit_point(consumer, TRIGGERS, skipped_ranges((1, 5))) == 6
    assert commit_point(consumer, TRIGGERS, skipped_ranges()) == 1


def test_a_head_that_is_a_skipped_range_is_not_stalled_but_a_missing_record_after_it_is() -> None:
    consumer = Bookkeeping()
    consumer._committed_offset[TRIGGERS] = 3
    consumer._acked[TRIGGERS] = [6, 7]
    assert stalled_heads(consumer, skipped_ranges((3, 6))) == {}
    assert stalled_heads(consumer, skipped_ranges((3, 5))) == {TRIGGERS: 5}
