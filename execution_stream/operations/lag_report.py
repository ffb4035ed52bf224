"""What `execution-stream lag` reports: per group, topic and partition, with totals per topic. Pure.

`to_document()` is the `--json` contract:

    {"observed_at": ISO-8601, "bootstrap_servers": str, "groups": [
      {"group", "state", "members", "status", "lag", "time_lag_seconds", "observations", "window",
       "topics": [
        {"topic", "lag", "time_lag_seconds", "status", "partitions": [
          {"partition", "committed_offset", "log_end_offset", "lag", "time_lag_seconds", "status",
           "consumer_id", "host", "client_id"}]}]}]}

A partition the group never committed has null committed_offset, lag and status, and counts in no
total; lag totals add the partitions' lags; a time lag total is the largest (the oldest message).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from execution_stream.operations.lag_status import LagStatus, MetricSample, status_metric_samples, worst
from execution_stream.operations.member_assignment import Member


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed_offset: int | None
    log_end_offset: int
    time_lag_seconds: float | None
    owner: Member | None
    status: LagStatus | None  # None where there is no committed offset to judge

    @property
    def lag(self) -> int | None:
        if self.committed_offset is None:
            return None
        return max(0, self.log_end_offset - self.committed_offset)

    def to_document(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "committed_offset": self.committed_offset,
            "log_end_offset": self.log_end_offset,
            "lag": self.lag,
            "time_lag_seconds": _rounded(self.time_lag_seconds),
            "status": None if self.status is None else self.status.value,
            "consumer_id": self.owner.consumer_id if self.owner else None,
            "host": self.owner.host if self.owner else None,
            "client_id": self.owner.client_id if self.owner else None,
        }


@dataclass(frozen=True)
class TopicLag:
    topic: str
    partitions: tuple[PartitionLag, ...]

    @property
    def lag(self) -> int:
        return _total_lag(self.partitions)

    @property
    def time_lag_seconds(self) -> float | None:
        return _oldest(self.partitions)

    @property
    def status(self) -> LagStatus:
        return worst(p.status for p in self.partitions if p.status is not None)

    def to_document(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "lag": self.lag,
            "time_lag_seconds": _rounded(self.time_lag_seconds),
            "status": self.status.value,
            "partitions": [partition.to_document() for partition in self.partitions],
        }


@dataclass(frozen=True)
class GroupLag:
    group: str
    state: str  # the coordinator's: Stable, Empty, PreparingRebalance, CompletingRebalance
    members: int
    partitions: tuple[PartitionLag, ...]  # sorted by topic, then partition
    observations: int  # in the status window of the partition seen most often
    window: int  # how many observations the status window keeps

    @property
    def topics(self) -> list[TopicLag]:
        names = sorted({partition.topic for partition in self.partitions})
        return [TopicLag(name, tuple(p for p in self.partitions if p.topic == name)) for name in names]

    @property
    def lag(self) -> int:
        return _total_lag(self.partitions)

    @property
    def time_lag_seconds(self) -> float | None:
        return _oldest(self.partitions)

    @property
    def status(self) -> LagStatus:
        return worst(p.status for p in self.partitions if p.status is not None)

    def status_metric_samples(self) -> list[MetricSample]:
        judged = [(p.topic, p.partition, p.status) for p in self.partitions if p.status is not None]
        return status_metric_samples(self.group, judged)

    def to_document(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "state": self.state,
            "members": self.members,
            "status": self.status.value,
            "lag": self.lag,
            "time_lag_seconds": _rounded(self.time_lag_seconds),
            "observations": self.observations,
            "window": self.window,
            "topics": [topic.to_document() for topic in self.topics],
        }


@dataclass(frozen=True)
class LagReport:
    observed_at: float  # seconds since the epoch
    bootstrap_servers: str
    groups: tuple[GroupLag, ...]

    def to_document(self) -> dict[str, Any]:
        return {
            "observed_at": datetime.fromtimestamp(self.observed_at, UTC).isoformat(timespec="milliseconds"),
            "bootstrap_servers": self.bootstrap_servers,
            "groups": [group.to_document() for group in self.groups],
        }


def _total_lag(partitions: Iterable[PartitionLag]) -> int:
    return sum(partition.lag or 0 for partition in partitions)


def _oldest(partitions: Iterable[PartitionLag]) -> float | None:
    ages = [p.time_lag_seconds for p in partitions if p.time_lag_seconds is not None]
    return max(ages, default=None)


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)
