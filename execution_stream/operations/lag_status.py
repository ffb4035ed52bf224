"""A partition's lag status as Burrow evaluates it, over a sliding window of observations. Pure.

An observation is a committed offset, the log-end offset and when it was seen. Burrow sees every
commit (it reads `__consumer_offsets`); `execution-stream lag` polls OffsetFetch, which says what the
committed offset is but not when it was committed. Each poll is therefore one observation, and
"commits are arriving" is read from the group: a live member owns the partition (`owned`).

The rules, in Burrow's order (its `calculatePartitionStatus`); the first that holds gives the status:

1. OK      the current lag is zero, or the lag was zero at some point in the window;
2. REWIND  the committed offset went back between two observations;
3. UNKNOWN fewer than `min_observations` observations: one look cannot tell a trend;
4. STOP    nothing was observed for longer than the window spans (Burrow's rule for commit
           streams), or the offset never moved in the window and no live member owns the
           partition: no commit is newer than the window and nobody is there to make one;
5. STALL   the offset never moved in the window although a live member owns the partition;
6. WARN    the offset moves but the lag grew across the window (it never went down, and it ended
           higher than it started);
7. OK      the offset moves and the lag is not growing.

A group's status is the worst of its partitions', worst first: STOP, REWIND, STALL, WARN, UNKNOWN, OK.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

DEFAULT_WINDOW = 10  # observations per partition, as Burrow's `intervals`
MIN_OBSERVATIONS = 3  # fewer cannot tell a moving consumer from a slow commit interval


class LagStatus(StrEnum):
    OK = "OK"
    UNKNOWN = "UNKNOWN"
    WARN = "WARN"
    STALL = "STALL"
    REWIND = "REWIND"
    STOP = "STOP"

    @property
    def severity(self) -> int:
        return _SEVERITY.index(self)


_SEVERITY = (
    LagStatus.OK,
    LagStatus.UNKNOWN,
    LagStatus.WARN,
    LagStatus.STALL,
    LagStatus.REWIND,
    LagStatus.STOP,
)


@dataclass(frozen=True)
class Observation:
    committed_offset: int
    log_end_offset: int
    timestamp: float  # seconds since the epoch, when this offset was seen
    owned: bool = True  # a live member of the group had the partition assigned

    @property
    def lag(self) -> int:
        return max(0, self.log_end_offset - self.committed_offset)


def evaluate(
    window: Sequence[Observation], now: float | None = None, min_observations: int = MIN_OBSERVATIONS
) -> LagStatus:
    """The status of one partition over `window` (oldest first); `now` defaults to the last observation."""
    if not window:
        return LagStatus.UNKNOWN
    if any(observation.lag == 0 for observation in window):
        return LagStatus.OK
    offsets = [observation.committed_offset for observation in window]
    if any(later < earlier for earlier, later in pairwise(offsets)):
        return LagStatus.REWIND
    if len(window) < min_observations:
        return LagStatus.UNKNOWN
    return _trend(window, window[-1].timestamp if now is None else now)


def _trend(window: Sequence[Observation], now: float) -> LagStatus:
    """Rules 4 to 7, for a window that never reached zero lag and never went back."""
    first, last = window[0], window[-1]
    moved = last.committed_offset != first.committed_offset
    silent = now - last.timestamp > last.timestamp - first.timestamp
    if silent or (not moved and not last.owned):
        return LagStatus.STOP
    if not moved:
        return LagStatus.STALL
    lags = [observation.lag for observation in window]
    if all(later >= earlier for earlier, later in pairwise(lags)) and lags[-1] > lags[0]:
        return LagStatus.WARN
    return LagStatus.OK


def worst(statuses: Iterable[LagStatus]) -> LagStatus:
    """The group's status: its worst partition's (OK for a group with no partition to judge)."""
    return max(statuses, key=lambda status: status.severity, default=LagStatus.OK)


class StatusTracker:
    """Keeps the last `window` observations of each partition; `lag --watch` feeds it every refresh."""

    def __init__(self, window: int = DEFAULT_WINDOW, min_observations: int = MIN_OBSERVATIONS) -> None:
        if window < 1:
            raise ValueError("the status window holds at least one observation")
        self.window = window
        self.min_observations = min(min_observations, window)
        self._windows: dict[Hashable, deque[Observation]] = {}

    def observe(self, key: Hashable, observation: Observation) -> LagStatus:
        window = self._windows.setdefault(key, deque(maxlen=self.window))
        window.append(observation)
        return evaluate(list(window), observation.timestamp, self.min_observations)

    def observations(self, key: Hashable) -> int:
        return len(self._windows.get(key, ()))


@dataclass(frozen=True)
class MetricSample:
    name: str
    labels: dict[str, str]
    value: float


PARTITION_STATUS_METRIC = "execution_stream_consumer_lag_status"
GROUP_STATUS_METRIC = "execution_stream_consumer_group_status"


def status_metric_samples(group: str, partitions: Iterable[tuple[str, int, LagStatus]]) -> list[MetricSample]:
    """Statuses as Prometheus state sets: for each partition and for the group, one sample per status,
    1 for the current one and 0 for the others (so `== 1` alerts and `max by` aggregations both work).
    """
    samples: list[MetricSample] = []
    statuses: list[LagStatus] = []
    for topic, partition, current in partitions:
        statuses.append(current)
        labels = {"group": group, "topic": topic, "partition": str(partition)}
        samples += _state_set(PARTITION_STATUS_METRIC, labels, current)
    return samples + _state_set(GROUP_STATUS_METRIC, {"group": group}, worst(statuses))


def _state_set(name: str, labels: dict[str, str], current: LagStatus) -> list[MetricSample]:
    return [
        MetricSample(name, {**labels, "status": status.value}, 1.0 if status is current else 0.0)
        for status in LagStatus
    ]
