"""A runner line's queue: one FIFO per priority class, and which class's head is admitted next (pure).

Priorities are the classes 0..9; a higher class is admitted earlier. Class 0 keeps the fields and
keys a line had before classes existed, so a line written then is a line whose whole queue is class 0:
- in the line head, class 0 counts with "head", "tail", "waiting"; class c (1..9) with "head_c",
  "tail_c", "waiting_c", absent until its first execution queues (absent reads as 0);
- class 0 queues at "Q#<tenant>#<index>#<runner>", class c at "Q#<tenant>#<c>:<index>#<runner>"
  (an index with a colon is never a class-0 index, and the runner, which may contain '#', stays last).

Admission: among the heads of the classes (FIFO within a class), the one with the highest effective
priority, `class + floor(waited / aging_seconds)` (waited = now - enqueued_at, never below 0); on a
tie the one enqueued earlier, then the lower class (never needed: equal waits age equally). A class-0
execution that waited 9 * aging_seconds ties with class 9 ones that have just come, and goes first
as the earlier: nothing starves. `aging_seconds = math.inf` turns aging off (strict classes); zero,
negative or NaN is refused. Choosing costs a read per class with executions waiting, whatever the
backlog.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from execution_stream.domain.models import MAX_PRIORITY, MIN_PRIORITY

PRIORITIES = range(MIN_PRIORITY, MAX_PRIORITY + 1)
DEFAULT_AGING_SECONDS = 600.0

_HEAD = {c: "head" if c == 0 else f"head_{c}" for c in PRIORITIES}
_TAIL = {c: "tail" if c == 0 else f"tail_{c}" for c in PRIORITIES}
_WAITING = {c: "waiting" if c == 0 else f"waiting_{c}" for c in PRIORITIES}


class ClassQueue(NamedTuple):
    """One priority class's queue: indexes admitted next and given next, and how many wait."""

    head: int
    tail: int
    queued: int


def checked_priority(priority: int) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or priority not in PRIORITIES:
        raise ValueError(f"a priority is an int from {MIN_PRIORITY} to {MAX_PRIORITY}, not {priority!r}")
    return priority


def checked_aging(aging_seconds: float) -> float:
    if not aging_seconds > 0:  # NaN too
        raise ValueError(f"aging_seconds must be positive (math.inf: no aging), not {aging_seconds!r}")
    return aging_seconds


def queue_key(tenant: str, priority: int, index: int, runner: str) -> str:
    if priority == 0:
        return f"Q#{tenant}#{index}#{runner}"
    return f"Q#{tenant}#{priority}:{index}#{runner}"


def effective_priority(priority: int, enqueued_at: float, now: float, aging_seconds: float) -> int:
    waited = max(0.0, now - enqueued_at)
    return priority + math.floor(waited / aging_seconds)


def admission_rank(
    priority: int, enqueued_at: float, now: float, aging_seconds: float
) -> tuple[int, float, int]:
    """The lowest rank among the classes' heads is admitted next."""
    return (-effective_priority(priority, enqueued_at, now, aging_seconds), enqueued_at, priority)


class ClassCounters:
    """The per-class counters kept in a line head (the dict itself, changed in place)."""

    def __init__(self, head: dict[str, Any]) -> None:
        self._head = head
        self._used = [c for c in PRIORITIES if c == 0 or _TAIL[c] in head]

    def used(self) -> list[int]:
        """Class 0 and every class that ever queued on this line, in order."""
        return list(self._used)

    def waiting_classes(self) -> list[int]:
        head = self._head
        return [c for c in self._used if head.get(_WAITING[c], 0) > 0]

    def queue(self, priority: int) -> ClassQueue:
        return ClassQueue(self.head_index(priority), self.tail_index(priority), self.waiting(priority))

    def head_index(self, priority: int) -> int:
        index: int = self._head.get(_HEAD[priority], 0)
        return index

    def tail_index(self, priority: int) -> int:
        index: int = self._head.get(_TAIL[priority], 0)
        return index

    def waiting(self, priority: int) -> int:
        count: int = self._head.get(_WAITING[priority], 0)
        return count

    def total_waiting(self) -> int:
        head = self._head
        if len(self._used) == 1:  # the common line, class 0 only
            count: int = head["waiting"]
            return count
        return sum(head.get(_WAITING[c], 0) for c in self._used)

    def next_index(self, priority: int) -> int:
        """The index a newly queued execution takes; it is counted as waiting."""
        index = self.tail_index(priority)
        if priority not in self._used:
            self._used = sorted([*self._used, priority])
            self._head[_HEAD[priority]] = 0
        self._head[_TAIL[priority]] = index + 1
        self._head[_WAITING[priority]] = self.waiting(priority) + 1
        return index

    def one_less_waiting(self, priority: int) -> None:
        self._head[_WAITING[priority]] = max(0, self.waiting(priority) - 1)

    def advance_head(self, priority: int, by: int = 1) -> None:
        self._head[_HEAD[priority]] = self.head_index(priority) + by
