"""The records the allocator answers with: a runner line's figures, admissions, the queued, results.

See `allocation.py` for the key scheme and `runner_lines.py` for the operations on a line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from execution_stream.domain.commits import Write
from execution_stream.domain.priority_queues import ClassQueue
from execution_stream.domain.supersede_groups import Superseded
from execution_stream.domain.trace import TraceContext

LimitFor = Callable[[str, str], int]


@dataclass(frozen=True)
class RunnerLine:
    in_use: int
    queued: int  # waiting in every priority class
    # Class 0's queue indexes, as before classes existed: the next to admit, the next to give;
    # between them, released ones leave holes.
    head: int
    tail: int
    version: int
    # Class 0 and every class that ever queued on the line.
    classes: Mapping[int, ClassQueue] = field(default_factory=dict)


@dataclass(frozen=True)
class Admission:
    tenant_id: str
    execution_id: str
    jit_event_id: str
    runner: str
    trace: TraceContext | None = None


@dataclass(frozen=True)
class Queued:
    tenant_id: str
    execution_id: str
    jit_event_id: str
    runner: str
    index: int  # in its priority class's queue
    priority: int = 0


class Outcome(StrEnum):
    ADMITTED = "admitted"
    QUEUED = "queued"
    DUPLICATE = "duplicate"
    NONE = "none"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    # Everything to forward now, in order: those a freed slot or a raised limit admitted, then this one.
    admitted: list[Admission]
    writes: list[Write]
    queued: Queued | None = None
    line: LineView | None = None
    # Those the request's supersede group took the place of: to cancel.
    superseded: list[Superseded] = field(default_factory=list)


@dataclass(frozen=True)
class LineView:
    tenant_id: str
    runner: str
    line: RunnerLine
    oldest_waiting_since: float | None  # of every class's head


@dataclass(frozen=True)
class Memory:
    """How long, and how many, released ids are remembered: a replayed request must not take a slot."""

    seconds: float
    count: int
