"""The internals of faust-streaming and aiokafka that `faust_fixes` and `kafka_fetching` patch or read,
with the shape they were written against. Run them with a new version before adding it to
TESTED_FAUST_STREAMING or TESTED_AIOKAFKA (then the fault tests, which prove the fixes)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, MutableSet
from importlib import metadata
from types import ModuleType, SimpleNamespace
from typing import Any, cast

import faust
import faust.tables.base
import faust.transport.consumer
import faust.transport.drivers.aiokafka
import faust.types.tuples
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer.fetcher import FetchResult, PartitionRecords
from aiokafka.consumer.subscription_state import Assignment
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Producer
from faust.types.tuples import ConsumerMessage

from execution_stream.adapters import kafka_fetching
from execution_stream.streaming import faust_fixes

TP = TopicPartition("trigger-execution", 0)

# (class, method, faust's parameters, what replaces it)
PATCHED: list[tuple[type, str, tuple[str, ...], Callable[..., Any]]] = [
    (
        Consumer,
        "__init__",
        (
            "self",
            "transport",
            "callback",
            "on_partitions_revoked",
            "on_partitions_assigned",
            "commit_interval",
            "commit_livelock_soft_timeout",
            "loop",
            "kwargs",
        ),
        faust_fixes._init,
    ),
    (Consumer, "ack", ("self", "message"), faust_fixes._ack),
    (Consumer, "_new_offset", ("self", "tp"), faust_fixes._new_offset),
    (
        Consumer,
        "_filter_tps_with_pending_acks",
        ("self", "topics"),
        faust_fixes._filter_tps_with_pending_acks,
    ),
    (Consumer, "perform_seek", ("self",), faust_fixes._perform_seek),
    (
        AIOKafkaConsumerThread,
        "_create_worker_consumer",
        ("self", "transport"),
        faust_fixes._create_worker_consumer,
    ),
    (Producer, "_settings_extra", ("self",), faust_fixes._settings_extra),
]
PATCHED_IDS = [f"{cls.__name__}.{name}" for cls, name, _, _ in PATCHED]

# How faust reaches what is patched: without these calls, a patch would silently do nothing.
CALLS: list[tuple[ModuleType, str]] = [
    (faust.transport.consumer, "offset = self._new_offset(tp)"),
    (faust.transport.consumer, "self._filter_tps_with_pending_acks(topics)"),
    (faust.transport.consumer, "await self.perform_seek()"),
    (faust.types.tuples, "return consumer.ack(self)"),
    (faust.transport.drivers.aiokafka, "return self._create_worker_consumer(transport)"),
    (faust.transport.drivers.aiokafka, "**self._settings_extra(),"),
    # The read marks go through these only, which `_NoReadOffsets` overrides.
    (faust.transport.consumer, "get_read_offset = self._read_offset.__getitem__"),
    (faust.transport.consumer, "set_read_offset = self._read_offset.__setitem__"),
    (faust.transport.consumer, "read_offset.update("),
]


def test_the_installed_versions_are_the_tested_ones() -> None:
    assert metadata.version("faust-streaming") in faust_fixes.TESTED_FAUST_STREAMING
    assert metadata.version("aiokafka") in kafka_fetching.TESTED_AIOKAFKA


@pytest.mark.parametrize(("cls", "name", "parameters", "replacement"), PATCHED, ids=PATCHED_IDS)
def test_each_patched_method_is_faust_own_with_the_parameters_its_replacement_takes(
    cls: type, name: str, parameters: tuple[str, ...], replacement: Callable[..., Any]
) -> None:
    assert name in vars(cls), f"{cls.__name__}.{name} is no longer defined there: patching it does nothing"
    original = faust_fixes.unpatched(cls, name)
    assert tuple(inspect.signature(original).parameters) == parameters
    assert inspect.iscoroutinefunction(original) == inspect.iscoroutinefunction(replacement)
    taken = inspect.signature(replacement).parameters
    given = {
        parameter.name: None
        for parameter in inspect.signature(original).parameters.values()
        if parameter.kind is parameter.POSITIONAL_OR_KEYWORD
    }
    inspect.signature(replacement).bind(**given, **({"original": original} if "original" in taken else {}))


@pytest.mark.parametrize(("module", "call"), CALLS, ids=[call for _, call in CALLS])
def test_faust_reaches_what_is_patched_through_these_calls(module: ModuleType, call: str) -> None:
    assert call in inspect.getsource(module)


@pytest.fixture
def app() -> Iterator[faust.App]:
    app = faust.App(
        "faust-internals",
        broker="kafka://localhost:9092",
        store="memory://",
        autodiscover=False,
        web_enabled=False,
    )
    yield app
    consumer: Any = app.consumer
    consumer._thread.thread_loop.close()  # its thread's loop, made when it is built


def test_the_app_reaches_the_methods_patched(app: faust.App) -> None:
    consumer: Any = app.consumer
    for instance, cls in ((consumer, Consumer), (consumer._thread, AIOKafkaConsumerThread)):
        mro = type(instance).__mro__
        for patched, name, _, _ in PATCHED:
            if patched is not cls:
                continue
            for klass in mro[: mro.index(cls)]:
                if name in vars(klass):
                    # Only an __init__ that calls the next one may come first.
                    assert name == "__init__", f"{klass.__name__} overrides {name}"
                    assert "super().__init__(" in inspect.getsource(vars(klass)[name])
    assert type(app.producer) is Producer


def test_the_consumer_keeps_the_bookkeeping_the_fixes_read(app: faust.App) -> None:
    consumer: Any = app.consumer
    assert (consumer._committed_offset[TP], consumer._committed_offset.get(TP)) == (None, None)
    assert (consumer._acked[TP], consumer._acked_index[TP]) == ([], set())
    assert isinstance(consumer._unacked_messages, MutableSet)
    assert (consumer._waiting_for_ack, consumer._n_acked) == (None, 0)
    assert consumer._read_offset[TP] is None
    assert tuple(inspect.signature(consumer.assignment).parameters) == ()
    assert inspect.iscoroutinefunction(consumer.earliest_offsets)
    assert inspect.iscoroutinefunction(consumer.seek_wait)


def test_the_app_exposes_what_the_fixes_read(app: faust.App) -> None:
    assert isinstance(app.flow_control.is_active(), bool)
    assert app.consumer_generation_id == 0
    assert app.topics.acking_topics == set()
    assert app.topics.acks_enabled_for(TP.topic) is False
    assert app.assignor.assigned_actives() == set()


def test_a_consumed_record_carries_its_generation_and_acknowledgement() -> None:
    record = ConsumerMessage(
        TP.topic, TP.partition, 4, 0.0, 0, None, None, b"{}", None, tp=TP, generation_id=2
    )
    assert (record.tp, record.topic, record.offset, record.generation_id, record.acked) == (
        TP,
        TP.topic,
        4,
        2,
        False,
    )


async def test_the_worker_consumer_is_an_aiokafka_consumer_that_starts_its_fetcher_with_its_isolation_level(
    app: faust.App,
) -> None:
    original = faust_fixes.unpatched(AIOKafkaConsumerThread, "_create_worker_consumer")
    thread = cast(Any, app.consumer)._thread
    consumer = faust_fixes._create_worker_consumer(thread, app.transport, original=original)
    try:
        assert isinstance(consumer, AIOKafkaConsumer)
        assert consumer._isolation_level == kafka_fetching.READ_COMMITTED
    finally:
        await consumer.stop()
    assert "isolation_level=self._isolation_level" in inspect.getsource(AIOKafkaConsumer.start)


def batch(*offsets: int) -> MemoryRecords:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for offset in offsets:
        builder.append(offset, timestamp=None, key=None, value=b"{}", headers=[])
    return MemoryRecords(bytes(builder.build()))


async def test_the_fetcher_keeps_the_records_and_positions_kafka_fetching_reads() -> None:
    assert tuple(inspect.signature(PartitionRecords._unpack_records).parameters) == ("self",)
    assert inspect.isgeneratorfunction(PartitionRecords._unpack_records)
    assert tuple(inspect.signature(FetchResult.getall).parameters) == ("self", "max_records")
    records = PartitionRecords(TP, batch(0, 2), [], 0, None, None, False, kafka_fetching.READ_COMMITTED)
    assignment = Assignment({TP})
    assignment.state_value(TP).seek(0)
    result = FetchResult(TP, assignment=assignment, partition_records=records, backoff=0)
    assert (records._tp, records.next_fetch_offset) == (TP, 0)
    assert (result._topic_partition, result._partition_records, result._assignment) == (
        TP,
        records,
        assignment,
    )
    assert result.check_assignment(TP)
    assert result.has_more()

    assert [record.offset for record in result.getall()] == [0, 2]
    assert (records.next_fetch_offset, assignment.state_value(TP).position, result.has_more()) == (
        3,
        3,
        False,
    )
    result._partition_records = records
    result._update_position()

    assert (assignment.active, assignment.tps) == (True, frozenset({TP}))
    assignment.state_value(TP).pause()
    assert assignment.state_value(TP).paused


class _Event:
    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(topic="allocate-runner-resource", partition=partition)


def test_a_table_write_takes_its_partition_from_the_event_as_current_event_sets() -> None:
    event = _Event(partition=3)

    reads_current_event: Callable[[], object] = getattr(faust.tables.base, "current_event")  # noqa: B009

    with faust_fixes.as_current_event(event):
        assert reads_current_event() is event
    assert reads_current_event() is None
    source = inspect.getsource(faust.tables.base.Collection.partition_for_key)
    assert "event = current_event()" in source
    assert "return event.message.partition" in source
