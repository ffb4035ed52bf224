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
4. A partition whose next offset to commit is neither acknowledged nor in an agent's hands while
   later ones are (the record was lost on its way to the agents) is sought back to that offset:
   `StalledPartitions`.

The price of 2 and 3: an offset that holds no record (a transaction marker) would stop commits, so
the input topics must not be written with Kafka transactions.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from faust.transport.consumer import Consumer
from mode.utils.futures import notify

_APPLIED = "_execution_stream_fixes"


class _NoReadOffsets(dict[Any, Any]):
    """faust's per-partition read marks, never kept (2)."""

    def __getitem__(self, tp: Any) -> None:
        return None

    def __setitem__(self, tp: Any, offset: Any) -> None:
        return None

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


def apply() -> None:
    if getattr(Consumer, _APPLIED, False):
        return
    original_init = Consumer.__init__
    original_ack = Consumer.ack
    original_new_offset = Consumer._new_offset
    original_perform_seek = Consumer.perform_seek

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
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if acked and (committed is None or min(acked) > committed):
            return None
        result: int | None = original_new_offset(self, tp)
        return result

    async def perform_seek(self: Any) -> None:
        await original_perform_seek(self)
        acking = [tp for tp in self.assignment() if tp.topic in self.app.topics.acking_topics]
        if acking:
            committed = self._committed_offset
            for tp, first in (await self.earliest_offsets(*acking)).items():
                if committed[tp] is None or committed[tp] < first:
                    committed[tp] = first

    Consumer.__init__ = init  # type: ignore[method-assign]
    Consumer.ack = ack  # type: ignore[method-assign]
    Consumer._new_offset = new_offset  # type: ignore[method-assign]
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    setattr(Consumer, _APPLIED, True)


def stalled_heads(consumer: Any) -> dict[Any, int]:
    """Partitions whose next offset to commit is missing while later ones are acknowledged, and no
    record at or after it but before those is in an agent's hands (4)."""
    in_hands: defaultdict[Any, float] = defaultdict(lambda: math.inf)
    for message in list(consumer._unacked_messages):
        in_hands[message.tp] = min(in_hands[message.tp], message.offset)
    stalled = {}
    for tp, acked in list(consumer._acked.items()):
        committed = consumer._committed_offset.get(tp)
        if acked and committed is not None and min(acked) > committed and in_hands[tp] >= min(acked):
            stalled[tp] = committed
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
