"""Fixes to faust-streaming 0.15's offset bookkeeping, applied once when the worker starts.

While partitions change hands (a worker joins, leaves, or is killed and replaced), faust lets
records be committed that no agent processed, and a trigger or an allocation request is lost:

1. A record that reaches a stream while flow control is paused, or that was fetched in an older
   generation, is skipped without processing, and acknowledged all the same (`Stream._py_aiter`).
   Here an acknowledgement is refused in those two cases: the record is not committed, and the
   partition's owner reads it again from the committed offset. Refusing an acknowledgement can only
   cause a replay, which every step here survives (see README "Delivery").
2. An offset jump between two fetched records is taken for a gap (compaction, transaction markers)
   and its offsets are acknowledged as if processed (`Consumer._add_gap`). Our stream topics are
   neither compacted nor transactional: a jump means records were skipped, so no offset is filled in.
3. The check that the lowest acknowledged offset follows the committed one lets a one-offset gap
   through (`min(acked) - committed > 1`, `Consumer._new_offset`): a commit then passes an offset
   that was never acknowledged. Here nothing is committed until the committed offset itself is.

Found by tests/faults (SIGKILL and rebalance under traffic); faust-streaming#216, #312, #606.
"""

from __future__ import annotations

from typing import Any

from faust.transport.consumer import Consumer

_APPLIED = "_execution_stream_fixes"


def apply() -> None:
    if getattr(Consumer, _APPLIED, False):
        return
    original_ack = Consumer.ack
    original_new_offset = Consumer._new_offset

    def ack(self: Any, message: Any) -> bool:
        app = self.app
        generation = getattr(message, "generation_id", app.consumer_generation_id)
        if not app.flow_control.is_active() or generation != app.consumer_generation_id:
            return False
        return bool(original_ack(self, message))

    async def add_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
        return None

    def new_offset(self: Any, tp: Any) -> int | None:
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if acked and committed is not None and min(acked) > committed:
            return None
        result: int | None = original_new_offset(self, tp)
        return result

    Consumer.ack = ack  # type: ignore[method-assign]
    Consumer._add_gap = add_gap  # type: ignore[method-assign]
    Consumer._new_offset = new_offset  # type: ignore[method-assign]
    setattr(Consumer, _APPLIED, True)
