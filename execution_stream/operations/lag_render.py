"""`lag` output: an aligned table per group, like `kafka-consumer-groups --describe`, or one JSON line."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from execution_stream.operations.lag_report import GroupLag, LagReport, PartitionLag, TopicLag
from execution_stream.operations.lag_status import LagStatus

NONE = "-"
COLUMNS = (
    "TOPIC",
    "PARTITION",
    "COMMITTED",
    "LOG-END",
    "LAG",
    "TIME-LAG",
    "STATUS",
    "CONSUMER-ID",
    "HOST",
    "CLIENT-ID",
)
UNKNOWN_NOTE = (
    "UNKNOWN: behind, but too few observations to tell a trend; `--watch N` observes every N seconds "
    "and judges OK, WARN, STALL, STOP or REWIND over a sliding window."
)


def render_json(report: LagReport) -> str:
    """One JSON document on one line (so `--watch --json` prints JSON lines)."""
    return json.dumps(report.to_document(), separators=(",", ":"))


def render_text(report: LagReport) -> str:
    observed = datetime.fromtimestamp(report.observed_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    blocks = [f"consumer lag at {report.bootstrap_servers}, {observed}"]
    blocks += [_group(group) for group in report.groups]
    if any(p.status is LagStatus.UNKNOWN for group in report.groups for p in group.partitions):
        blocks.append(UNKNOWN_NOTE)
    return "\n\n".join(blocks)


def _group(group: GroupLag) -> str:
    header = (
        f"GROUP {group.group}  state {group.state}  members {group.members}  status {group.status}  "
        f"lag {group.lag}  time lag {duration(group.time_lag_seconds)}  "
        f"observations {group.observations}/{group.window}"
    )
    rows = [list(COLUMNS)]
    for topic in group.topics:
        rows += [_partition_row(partition) for partition in topic.partitions]
        rows.append(_total_row(topic))
    if len(rows) == 1:
        return f"{header}\n(no committed offsets and no assigned partitions)"
    return header + "\n" + _table(rows)


def _partition_row(partition: PartitionLag) -> list[str]:
    owner = partition.owner
    return [
        partition.topic,
        str(partition.partition),
        _text(partition.committed_offset),
        str(partition.log_end_offset),
        _text(partition.lag),
        duration(partition.time_lag_seconds),
        _text(partition.status),
        owner.consumer_id if owner else NONE,
        owner.host if owner else NONE,
        owner.client_id if owner else NONE,
    ]


def _total_row(topic: TopicLag) -> list[str]:
    return [topic.topic, "total", NONE, NONE, str(topic.lag), duration(topic.time_lag_seconds), topic.status]


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip()
        for row in rows
    )


def _text(value: object | None) -> str:
    return NONE if value is None else str(value)


def duration(seconds: float | None) -> str:
    """3.2s, 4m05s, 2h03m, 3d04h: precise for fresh lag, coarse for old."""
    if seconds is None:
        return NONE
    if round(seconds, 1) < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"
