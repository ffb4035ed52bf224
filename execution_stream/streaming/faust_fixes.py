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
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Producer
from faust.types import TP
from mode.utils.futures import notify

from execution_stream.adapters import kafka_fetching
from execution_stream.adapters.kafka_fetching import SKIPPED, SkippedOffsets

_APPLIED = "_execution_stream_fixes"


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


def apply() -> None:
    kafka_fetching.apply()
    if getattr(Consumer, _APPLIED, False):
        return
    original_init = Consumer.__init__
    original_ack = Consumer.ack
    original_perform_seek = Consumer.perform_seek
    original_pending_acks = Consumer._filter_tps_with_pending_acks
    original_create_consumer = AIOKafkaConsumerThread._create_worker_consumer

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._read_offset = _NoReadOffsets()

    def ack(self: Any, message: Any) -> bool:
        app = self.app
        generation = getattr(message, "generation_id", app.consumer_generation_id)
        if not app.flow_control.is_active() or generation != app.consumer_generation_id:
            # Done with, so that nothing waits for it (a stop waits for every tracked record),
            # but its offset is not recorded as acknowledged: it is never committed.
            message.acked = True
            self._unacked_messages.discard(message)
            notify(self._waiting_for_ack)
            return False
        return bool(original_ack(self, message))

    def new_offset(self: Any, tp: Any) -> int | None:
        committed = self._committed_offset[tp]
        if committed is None:
            return None
        SKIPPED.forget_below(tp, committed)
        point = commit_point(self, tp)
        if point is None or point == committed:
            return None
        acked = self._acked[tp]
        self._acked_index[tp].difference_update(offset for offset in acked if offset < point)
        acked[:] = [offset for offset in acked if offset >= point]
        return point

    def pending_acks(self: Any, topics: Any = None) -> Any:
        pending = set(original_pending_acks(self, topics))
        for topic, partition in SKIPPED.partitions():
            if topics is None or topic in topics or (topic, partition) in topics:
                pending.add(TP(topic, partition))
        return pending

    async def perform_seek(self: Any) -> None:
        await original_perform_seek(self)
        SKIPPED.track(set(self.app.topics.acking_topics))
        acking = [tp for tp in self.assignment() if tp.topic in self.app.topics.acking_topics]
        if acking:
            committed = self._committed_offset
            for tp, first in (await self.earliest_offsets(*acking)).items():
                if committed[tp] is None or committed[tp] < first:
                    committed[tp] = first

    def create_consumer(self: Any, transport: Any) -> Any:
        consumer = original_create_consumer(self, transport)
        consumer._isolation_level = kafka_fetching.READ_COMMITTED
        return consumer

    def idempotent(self: Any) -> dict[str, Any]:
        return {"acks": "all", "enable_idempotence": True}

    Producer._settings_extra = idempotent  # type: ignore[method-assign]
    Consumer.__init__ = init  # type: ignore[method-assign]
    Consumer.ack = ack  # type: ignore[method-assign]
    Consumer._new_offset = new_offset  # type: ignore[method-assign]
    Consumer._filter_tps_with_pending_acks = pending_acks  # type: ignore[method-assign]
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    AIOKafkaConsumerThread._create_worker_consumer = create_consumer  # type: ignore[method-assign]
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
