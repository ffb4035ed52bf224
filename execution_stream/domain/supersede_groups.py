"""Supersede groups: a newer request of a group takes the place of the group's older one.

A runner line remembers, per group, the latest execution requested in it at
"S#<tenant>#<group key>#<runner>" = {"execution_id", "jit_event_id"}. A new request of the group
takes the recorded one out of its queue if it still waits there; if it holds a slot, it keeps it and
is reported only when the group cancels what is in progress (its caller cancels it at its runner).
The key goes when the recorded execution is released or superseded, so groups do not accumulate.
"""

from __future__ import annotations

from dataclasses import dataclass

from execution_stream.domain.trace import TraceContext


@dataclass(frozen=True)
class SupersedeGroup:
    key: str  # opaque, computed by the caller (a digest of asset, plan item and job); no '#'
    cancel_in_progress: bool = False

    def __post_init__(self) -> None:
        if not self.key or "#" in self.key:
            raise ValueError(f"a supersede group's key is not empty and has no '#', not {self.key!r}")


@dataclass(frozen=True)
class Superseded:
    tenant_id: str
    execution_id: str
    jit_event_id: str
    runner: str
    replaced_by: str  # the execution id of the request that superseded it
    was_queued: bool  # True: taken out of its queue now; False: it holds a slot and keeps it
    trace: TraceContext | None = None


def group_key(tenant: str, group: str, runner: str) -> str:
    return f"S#{tenant}#{group}#{runner}"
