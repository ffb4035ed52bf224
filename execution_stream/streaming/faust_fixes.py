"""Fixes to faust-streaming 0.15's offset bookkeeping: the one module that touches faust's internals.

While partitions change hands (a worker joins, leaves, or is killed and replaced), faust commits
records that no agent processed, or never hands them to an agent; a trigger or a status update is
then lost (found by tests/faults; compare faust-streaming#216, #312, #606). Here:

1. A record skipped without processing (it reached a stream while flow control was paused, or was
   fetched in an older generation) is let go without its offset being recorded as acknowledged.
2. faust remembers the last offset it read per partition and drops any record below it. After a
   seek, records fetched before it can move that mark past the records the seek asked for again,
   which are then dropped without a trace. Nothing is remembered here: a record read twice is
   processed twice, which every step survives (README "Delivery"). With no mark, offset jumps are
   never taken for compaction gaps and acknowledged unprocessed either.
3. Nothing is committed past an offset that was not acknowledged itself, including on a partition
   with no committed offset yet, or whose committed offset retention has deleted (either starts at
   the log's first offset).
   The offsets that hold no record to process (transaction markers, aborted transactions,
   compaction holes: `adapters.kafka_fetching.SKIPPED`) are committed past like acknowledged ones.
4. A partition whose next offset to commit is neither acknowledged nor in an agent's hands while
   later ones are (the record was lost on its way to the agents) is sought back to that offset:
   `StalledPartitions`.
5. The worker reads `read_committed`: a producer's aborted transactions are never processed.
6. The worker's producer is idempotent (acks=all): a request retried after its answer was lost (a
   broker restarting) writes nothing twice.
7. A table agent takes its records in batches; faust sends a table write to the changelog partition
   of the stream's current event, so each record's writes are made with it as the current event
   (`as_current_event`).

Under traffic, a regression shows as a lost or duplicated record (or an aborted one processed) in:
1. tests/faults/test_rebalance.py
     ::test_a_worker_joining_then_leaving_mid_stream_loses_and_duplicates_nothing
   tests/e2e/test_crash_and_scale.py
     ::test_two_workers_in_one_group_split_the_work_and_agree
2. tests/faults/test_rebalance.py
     ::test_a_worker_joining_then_leaving_mid_stream_loses_and_duplicates_nothing
   tests/faults/test_worker_kills.py
     ::test_a_worker_killed_three_times_under_traffic_loses_and_duplicates_no_execution
3. tests/faults/test_worker_kills.py
     ::test_a_worker_killed_three_times_under_traffic_loses_and_duplicates_no_execution
   tests/e2e/test_crash_and_scale.py
     ::test_a_worker_killed_mid_stream_loses_and_duplicates_nothing
   skipped ranges committed past:
   tests/e2e/test_any_producer.py
     ::test_transactional_producers_aborted_triggers_never_run_and_markers_never_stop_commits
   and recorded: tests/integration/test_kafka_fetching.py
     ::test_transaction_markers_and_aborted_records_are_skipped_offsets
   a committed offset deleted by retention: no test under traffic, only the unit test.
4. tests/faults/test_rebalance.py
     ::test_a_worker_joining_then_leaving_mid_stream_loses_and_duplicates_nothing
   tests/faults/test_worker_kills.py
     ::test_a_worker_killed_three_times_under_traffic_loses_and_duplicates_no_execution
5. tests/e2e/test_any_producer.py
     ::test_transactional_producers_aborted_triggers_never_run_and_markers_never_stop_commits
6. tests/faults/test_broker_restart.py
     ::test_the_broker_restarted_under_traffic_the_worker_recovers_and_loses_nothing
7. tests/e2e/test_pipeline_behaviour.py
     ::test_batched_allocation_writes_go_to_each_tenants_changelog_partition
   tests/faults/test_worker_kills.py
     ::test_a_worker_killed_three_times_under_traffic_loses_and_duplicates_no_execution
Each patched method is tested on stand-ins in tests/unit/test_faust_fixes.py, and the internals they
rely on in tests/unit/test_faust_internals.py; `apply` refuses a faust-streaming (or aiokafka) version
other than the tested ones.
"""

from __future__ import annotations

import inspect
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from faust import streams
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Producer
from faust.types import TP
from mode.utils.futures import notify

from execution_stream.adapters import kafka_fetching
from execution_stream.adapters.kafka_fetching import SKIPPED, SkippedOffsets

_APPLIED = "_execution_stream_fixes"
# The versions whose internals these fixes were written against and proven on (see above).
TESTED_FAUST_STREAMING = frozenset({"0.15.3"})

_ORIGINALS: dict[tuple[type, str], Callable[..., Any]] = {}


class _NoReadOffsets(dict[Any, Any]):
    """faust's per-partition read marks, never kept (2)."""

    def __getitem__(self, tp: Any) -> None:
        return None

    def __setitem__(self, tp: Any, offset: Any) -> None:
        return None

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


def commit_point(consumer: Any, tp: Any, skipped: SkippedOffsets = SKIPPED) -> int | None:
    """The committed offset moved past every acknowledged offset and skipped range that follow it
    without a hole: the offset to commit."""
    committed = consumer._committed_offset.get(tp)
    if committed is None:
        return None
    acked = set(consumer._acked.get(tp, ()))
    point: int = committed
    while True:
        if point in acked:
            point += 1
            continue
        end = skipped.end_of_range_at(tp, point)
        if end is None:
            return point
        point = end


def _init(self: Any, *args: Any, original: Callable[..., None], **kwargs: Any) -> None:
    """`Consumer.__init__` (2)."""
    original(self, *args, **kwargs)
    self._read_offset = _NoReadOffsets()


def _ack(self: Any, message: Any, original: Callable[[Any, Any], bool]) -> bool:
    """`Consumer.ack` (1)."""
    app = self.app
    generation = getattr(message, "generation_id", app.consumer_generation_id)
    if not app.flow_control.is_active() or generation != app.consumer_generation_id:
        # Done with, so that nothing waits for it (a stop waits for every tracked record),
        # but its offset is not recorded as acknowledged: it is never committed.
        message.acked = True
        self._unacked_messages.discard(message)
        notify(self._waiting_for_ack)
        return False
    return bool(original(self, message))


def _new_offset(self: Any, tp: Any, skipped: SkippedOffsets = SKIPPED) -> int | None:
    """Replaces `Consumer._new_offset` (3)."""
    committed = self._committed_offset[tp]
    if committed is None:
        return None
    skipped.forget_below(tp, committed)
    point = commit_point(self, tp, skipped)
    if point is None or point == committed:
        return None
    acked = self._acked[tp]
    self._acked_index[tp].difference_update(offset for offset in acked if offset < point)
    acked[:] = [offset for offset in acked if offset >= point]
    return point


def _filter_tps_with_pending_acks(
    self: Any,
    topics: Any = None,
    *,
    original: Callable[[Any, Any], Any],
    skipped: SkippedOffsets = SKIPPED,
) -> Any:
    """`Consumer._filter_tps_with_pending_acks`: a skipped range is something to commit too (3)."""
    pending = set(original(self, topics))
    for topic, partition in skipped.partitions():
        if topics is None or topic in topics or (topic, partition) in topics:
            pending.add(TP(topic, partition))
    return pending


async def _perform_seek(
    self: Any, *, original: Callable[[Any], Any], skipped: SkippedOffsets = SKIPPED
) -> None:
    """`Consumer.perform_seek`: no committed offset, or one retention deleted, is the first (3)."""
    await original(self)
    skipped.track(set(self.app.topics.acking_topics))
    acking = [tp for tp in self.assignment() if tp.topic in self.app.topics.acking_topics]
    if acking:
        committed = self._committed_offset
        for tp, first in (await self.earliest_offsets(*acking)).items():
            if committed[tp] is None or committed[tp] < first:
                committed[tp] = first


def _create_worker_consumer(self: Any, transport: Any, *, original: Callable[[Any, Any], Any]) -> Any:
    """`AIOKafkaConsumerThread._create_worker_consumer` (5)."""
    consumer = original(self, transport)
    consumer._isolation_level = kafka_fetching.READ_COMMITTED
    return consumer


def _settings_extra(self: Any) -> dict[str, Any]:
    """Replaces `Producer._settings_extra` (6)."""
    return {"acks": "all", "enable_idempotence": True}


def _wrapping(original: Callable[..., Any], patched: Callable[..., Any]) -> Callable[..., Any]:
    """A method that calls `patched` with the method it replaces as `original`."""
    if inspect.iscoroutinefunction(original):

        async def method_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            return await patched(self, *args, original=original, **kwargs)

        return method_async

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return patched(self, *args, original=original, **kwargs)

    return method


def _install(cls: type, name: str, patched: Callable[..., Any], *, wraps: bool) -> None:
    original = getattr(cls, name)
    _ORIGINALS[(cls, name)] = original
    setattr(cls, name, _wrapping(original, patched) if wraps else patched)


def unpatched(cls: type, name: str) -> Callable[..., Any]:
    """faust's own method `name` of `cls`, whether `apply` replaced it or not."""
    return _ORIGINALS.get((cls, name)) or getattr(cls, name)


def apply() -> None:
    """Patches faust (and aiokafka's fetcher), once; refuses a version the fixes were not tested on."""
    kafka_fetching.require_tested_version("faust-streaming", TESTED_FAUST_STREAMING)
    kafka_fetching.apply()
    if getattr(Consumer, _APPLIED, False):
        return
    _install(Consumer, "__init__", _init, wraps=True)
    _install(Consumer, "ack", _ack, wraps=True)
    _install(Consumer, "_new_offset", _new_offset, wraps=False)
    _install(Consumer, "_filter_tps_with_pending_acks", _filter_tps_with_pending_acks, wraps=True)
    _install(Consumer, "perform_seek", _perform_seek, wraps=True)
    _install(AIOKafkaConsumerThread, "_create_worker_consumer", _create_worker_consumer, wraps=True)
    _install(Producer, "_settings_extra", _settings_extra, wraps=False)
    setattr(Consumer, _APPLIED, True)


def stalled_heads(consumer: Any, skipped: SkippedOffsets = SKIPPED) -> dict[Any, int]:
    """Partitions whose next offset to commit is missing while later ones are acknowledged, and no
    record at or after it but before those is in an agent's hands (4)."""
    in_hands: defaultdict[Any, list[int]] = defaultdict(list)
    for message in list(consumer._unacked_messages):
        in_hands[message.tp].append(message.offset)
    stalled = {}
    for tp, acked in list(consumer._acked.items()):
        point = commit_point(consumer, tp, skipped)
        if point is None:
            continue
        first_later = min((offset for offset in acked if offset > point), default=None)
        if first_later is None:
            continue
        if not any(point <= offset < first_later for offset in in_hands[tp]):
            stalled[tp] = point
    return stalled


class StalledPartitions:
    """Seeks a partition back to its next offset to commit once it was found stalled at that same
    offset twice in a row (an agent slow on a batch holds its records, so it is never stalled)."""

    def __init__(self) -> None:
        self._suspects: dict[Any, int] = {}

    async def heal(self, consumer: Any) -> dict[Any, int]:
        stalled = stalled_heads(consumer)
        confirmed = {tp: offset for tp, offset in stalled.items() if self._suspects.get(tp) == offset}
        self._suspects = {tp: offset for tp, offset in stalled.items() if tp not in confirmed}
        if confirmed:
            await consumer.seek_wait(confirmed)
        return confirmed


@contextmanager
def as_current_event(event: Any) -> Iterator[None]:
    """`event` as the stream's current event, which a faust table's write takes its changelog
    partition from, for the length of the block."""
    token = streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        streams._current_event.reset(token)
