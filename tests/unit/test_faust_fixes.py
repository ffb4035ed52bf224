"""faust's patched methods, and finding a partition stalled at a record no agent received, on
stand-ins of faust's bookkeeping (no Kafka)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, NamedTuple

import pytest
from aiokafka.consumer.fetcher import PartitionRecords
from faust.transport.consumer import Consumer

from execution_stream.adapters import kafka_fetching
from execution_stream.adapters.kafka_fetching import SkippedOffsets
from execution_stream.streaming import faust_fixes
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


# The patched methods, each on a stand-in of what it reads: faust's Consumer, its app, its records.

GENERATION = 3
OTHER = TP("not-acked", 0)


@dataclass
class FlowControl:
    active: bool = True

    def is_active(self) -> bool:
        return self.active


@dataclass
class Topics:
    acking_topics: set[str] = field(default_factory=lambda: {STATUS.topic, TRIGGERS.topic})

    def acks_enabled_for(self, topic: str) -> bool:
        return topic in self.acking_topics


@dataclass
class App:
    consumer_generation_id: int = GENERATION
    flow_control: FlowControl = field(default_factory=FlowControl)
    topics: Topics = field(default_factory=Topics)


@dataclass(eq=False)
class Record:
    tp: TP
    offset: int
    generation_id: int = GENERATION
    acked: bool = False

    @property
    def topic(self) -> str:
        return self.tp.topic


@dataclass
class StandIn:
    """The fields and calls of faust's Consumer that the patched methods use, kept as faust keeps them."""

    app: App = field(default_factory=App)
    _acked: defaultdict[TP, list[int]] = field(default_factory=lambda: defaultdict(list))
    _acked_index: defaultdict[TP, set[int]] = field(default_factory=lambda: defaultdict(set))
    _committed_offset: defaultdict[TP, int | None] = field(default_factory=lambda: defaultdict(lambda: None))
    _unacked_messages: set[Record] = field(default_factory=set)
    _waiting_for_ack: asyncio.Future[None] | None = None
    _n_acked: int = 0
    assigned: set[TP] = field(default_factory=set)
    earliest: dict[TP, int] = field(default_factory=dict)
    asked_earliest: list[tuple[TP, ...]] = field(default_factory=list)

    def assignment(self) -> set[TP]:
        return self.assigned

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        self.asked_earliest.append(tps)
        return {tp: self.earliest[tp] for tp in tps}


def faust_ack() -> Callable[[Any, Any], bool]:
    return faust_fixes.unpatched(Consumer, "ack")


def holding(consumer: StandIn, *records: Record) -> list[Record]:
    consumer._unacked_messages.update(records)
    return list(records)


@pytest.mark.parametrize(
    ("generation", "flowing"), [(GENERATION - 1, True), (GENERATION, False)], ids=["old-generation", "paused"]
)
async def test_a_record_skipped_without_processing_is_let_go_unacknowledged(
    generation: int, flowing: bool
) -> None:
    consumer = StandIn()
    consumer.app.flow_control.active = flowing
    consumer._waiting_for_ack = asyncio.get_running_loop().create_future()
    [record] = holding(consumer, Record(TRIGGERS, 4, generation))

    def refuse(self: Any, message: Any) -> bool:
        raise AssertionError("faust's ack was called")

    assert faust_fixes._ack(consumer, record, original=refuse) is False
    assert record.acked
    assert consumer._unacked_messages == set()
    assert consumer._waiting_for_ack.done()
    assert (dict(consumer._acked), dict(consumer._acked_index), consumer._n_acked) == ({}, {}, 0)


def test_a_record_of_the_current_generation_is_acknowledged_by_faust() -> None:
    consumer = StandIn()
    record, no_generation = holding(consumer, Record(TRIGGERS, 4), Record(TRIGGERS, 5))
    del no_generation.generation_id  # read as the current one

    assert faust_fixes._ack(consumer, record, original=faust_ack()) is True
    assert faust_fixes._ack(consumer, no_generation, original=faust_ack()) is True
    assert (consumer._acked[TRIGGERS], consumer._acked_index[TRIGGERS]) == ([4, 5], {4, 5})
    assert consumer._unacked_messages == set()


def test_the_original_ack_is_called_with_the_record_and_its_answer_returned() -> None:
    consumer, calls = StandIn(), []
    record = Record(TRIGGERS, 4)

    def original(self: Any, message: Any) -> bool:
        calls.append((self, message))
        return False

    assert faust_fixes._ack(consumer, record, original=original) is False
    assert calls == [(consumer, record)]


def acknowledged(consumer: StandIn, tp: TP, committed: int | None, offsets: list[int]) -> None:
    consumer._committed_offset[tp] = committed
    consumer._acked[tp] = list(offsets)
    consumer._acked_index[tp] = set(offsets)


def test_the_new_offset_moves_past_acknowledged_offsets_and_skipped_ranges_and_trims_them() -> None:
    consumer = StandIn()
    acknowledged(consumer, TRIGGERS, 5, [9, 5, 6, 12, 7])
    skipped = skipped_ranges((1, 3), (8, 9), (13, 14))

    assert faust_fixes._new_offset(consumer, TRIGGERS, skipped) == 10
    assert (consumer._acked[TRIGGERS], consumer._acked_index[TRIGGERS]) == ([12], {12})
    assert skipped.end_of_range_at(TRIGGERS, 1) is None  # below the committed offset: forgotten
    assert skipped.end_of_range_at(TRIGGERS, 13) == 14


@pytest.mark.parametrize(
    ("committed", "offsets"), [(5, [7, 8]), (None, [0, 1]), (5, [])], ids=["hole", "uncommitted", "none"]
)
def test_the_new_offset_is_none_when_nothing_moves_or_nothing_is_committed(
    committed: int | None, offsets: list[int]
) -> None:
    consumer = StandIn()
    acknowledged(consumer, TRIGGERS, committed, offsets)

    assert faust_fixes._new_offset(consumer, TRIGGERS, skipped_ranges((6, 7))) is None
    assert (consumer._acked[TRIGGERS], consumer._acked_index[TRIGGERS]) == (offsets, set(offsets))


@pytest.mark.parametrize(
    ("topics", "pending"),
    [
        (None, {STATUS, TRIGGERS}),
        ({STATUS.topic}, {STATUS}),
        ({TRIGGERS.topic}, {TRIGGERS}),
        ({TRIGGERS}, {TRIGGERS}),
        ({OTHER.topic}, set()),
    ],
    ids=["all", "acked-topic", "skipped-topic", "skipped-partition", "neither"],
)
def test_partitions_with_skipped_ranges_have_pending_acks_too(topics: Any, pending: set[TP]) -> None:
    consumer = StandIn()
    acknowledged(consumer, STATUS, 1, [1])
    original = faust_fixes.unpatched(Consumer, "_filter_tps_with_pending_acks")

    found = faust_fixes._filter_tps_with_pending_acks(
        consumer, topics, original=original, skipped=skipped_ranges((3, 6))
    )
    assert found == pending


def seek_to(committed: dict[TP, int | None]) -> Callable[[Any], Any]:
    """faust's seek to the committed offsets, which it then records."""

    async def perform_seek(self: Any) -> None:
        self._committed_offset.update(committed)

    return perform_seek


async def test_a_seek_raises_a_missing_or_deleted_committed_offset_of_an_acking_topic_to_the_first() -> None:
    later = TP(STATUS.topic, 1)
    consumer = StandIn(assigned={STATUS, TRIGGERS, later, OTHER}, earliest={STATUS: 5, TRIGGERS: 4, later: 5})
    skipped = SkippedOffsets()
    seek = seek_to({STATUS: 2, later: 7, OTHER: 1})

    await faust_fixes._perform_seek(consumer, original=seek, skipped=skipped)

    assert dict(consumer._committed_offset) == {STATUS: 5, TRIGGERS: 4, later: 7, OTHER: 1}
    assert [set(asked) for asked in consumer.asked_earliest] == [{STATUS, TRIGGERS, later}]
    skipped.add(TRIGGERS, 1, 3)
    skipped.add(OTHER, 1, 3)
    assert (skipped.end_of_range_at(TRIGGERS, 1), skipped.end_of_range_at(OTHER, 1)) == (3, None)


async def test_a_seek_with_no_acking_partition_asks_for_no_earliest_offsets() -> None:
    consumer = StandIn(assigned={OTHER})

    await faust_fixes._perform_seek(consumer, original=seek_to({OTHER: None}), skipped=SkippedOffsets())

    assert (consumer.asked_earliest, dict(consumer._committed_offset)) == ([], {OTHER: None})


@dataclass
class KafkaConsumer:
    _isolation_level: str = "read_uncommitted"


def test_the_worker_consumer_reads_committed() -> None:
    created = KafkaConsumer()
    calls: list[tuple[Any, Any]] = []

    def original(self: Any, transport: Any) -> KafkaConsumer:
        calls.append((self, transport))
        return created

    thread, transport = object(), object()
    consumer = faust_fixes._create_worker_consumer(thread, transport, original=original)
    assert (consumer, consumer._isolation_level, calls) == (created, "read_committed", [(thread, transport)])


def test_the_producer_is_idempotent() -> None:
    assert faust_fixes._settings_extra(object()) == {"acks": "all", "enable_idempotence": True}


def test_read_offsets_are_never_remembered() -> None:
    offsets = faust_fixes._NoReadOffsets()
    offsets[TRIGGERS] = 4
    offsets.update({STATUS: 2}, other=3)

    assert (offsets[TRIGGERS], offsets[STATUS], len(offsets), TRIGGERS in offsets) == (
        None,
        None,
        0,
        False,
    )
    assert offsets.pop(TRIGGERS, None) is None


def test_the_consumer_forgets_read_offsets_from_its_start() -> None:
    consumer, calls = StandIn(), []

    def original(self: Any, *args: Any, **kwargs: Any) -> None:
        calls.append((args, kwargs))
        self._read_offset = defaultdict(lambda: None)

    faust_fixes._init(consumer, "transport", "callback", original=original, commit_interval=1.0)
    assert calls == [(("transport", "callback"), {"commit_interval": 1.0})]
    assert isinstance(vars(consumer)["_read_offset"], faust_fixes._NoReadOffsets)


class Patchable:
    def __init__(self, value: int) -> None:
        self.value = value

    def plus(self, amount: int) -> int:
        return self.value + amount

    async def later(self) -> int:
        return self.value


async def test_an_installed_method_is_given_the_one_it_replaces_and_keeps_it_reachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(faust_fixes, "_ORIGINALS", {})
    originals = Patchable.plus, Patchable.later

    def plus(self: Patchable, amount: int, original: Callable[[Patchable, int], int]) -> int:
        return original(self, amount) * 10

    async def later(self: Patchable, *, original: Callable[[Patchable], Awaitable[int]]) -> int:
        return await original(self) + 1

    faust_fixes._install(Patchable, "plus", plus, wraps=True)
    faust_fixes._install(Patchable, "later", later, wraps=True)

    assert (Patchable(2).plus(3), await Patchable(2).later()) == (50, 3)
    assert asyncio.iscoroutinefunction(Patchable.later)
    assert (faust_fixes.unpatched(Patchable, "plus"), faust_fixes.unpatched(Patchable, "later")) == originals


def test_apply_refuses_a_faust_streaming_version_it_was_not_tested_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(faust_fixes, "TESTED_FAUST_STREAMING", frozenset({"0.0.1", "0.0.2"}))
    ack = vars(Consumer)["ack"]
    installed = metadata.version("faust-streaming")

    with pytest.raises(RuntimeError, match=f"faust-streaming {installed} is installed") as refused:
        faust_fixes.apply()
    assert "tested only with faust-streaming 0.0.1, 0.0.2" in str(refused.value)
    assert vars(Consumer)["ack"] is ack


def test_apply_refuses_an_aiokafka_version_it_was_not_tested_with(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_fetching, "TESTED_AIOKAFKA", frozenset({"0.0.1"}))
    ack, unpack = vars(Consumer)["ack"], vars(PartitionRecords)["_unpack_records"]
    installed = metadata.version("aiokafka")

    for apply in (kafka_fetching.apply, faust_fixes.apply):
        with pytest.raises(
            RuntimeError, match=f"aiokafka {installed} is installed.*tested only with aiokafka 0.0.1"
        ):
            apply()
    assert (vars(Consumer)["ack"], vars(PartitionRecords)["_unpack_records"]) == (ack, unpack)
