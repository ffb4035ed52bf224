"""The pure parts of `lag`: owners from member assignments, the report, and its two renderings."""

from __future__ import annotations

import json
import zlib
from typing import Any

import pytest
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from execution_stream.operations.lag import GroupSnapshot, LagOptions, build_group
from execution_stream.operations.lag_render import UNKNOWN_NOTE, duration, render_json, render_text
from execution_stream.operations.lag_report import LagReport
from execution_stream.operations.lag_status import LagStatus, StatusTracker
from execution_stream.operations.member_assignment import (
    NOTHING,
    Member,
    MemberPartitions,
    decode_assignment,
    owners,
)

NOW = 1_790_000_000.0
WORKER_A = Member("faust-a", "/10.0.0.1", "faust-0.15.3")
WORKER_B = Member("faust-b", "/10.0.0.2", "faust-0.15.3")


def assignment(partitions: dict[str, list[int]], user_data: bytes = b"") -> bytes:
    encoded: bytes = ConsumerProtocolMemberAssignment(0, sorted(partitions.items()), user_data).encode()
    return encoded


def faust_user_data(actives: dict[str, list[int]], standbys: dict[str, list[int]]) -> bytes:
    """What faust's assignor writes: zlib-compressed ClientMetadata JSON."""
    metadata = {
        "assignment": {"actives": actives, "standbys": standbys},
        "url": "http://worker:6066",
        "changelog_distribution": {},
    }
    return zlib.compress(json.dumps(metadata).encode())


def test_a_plain_consumer_assignment_is_all_active() -> None:
    decoded = decode_assignment(assignment({"trigger-execution": [0, 2], "execution-status": [1]}))
    assert decoded.actives == {("trigger-execution", 0), ("trigger-execution", 2), ("execution-status", 1)}
    assert decoded.standbys == frozenset()


def test_faust_standby_replicas_are_told_apart_and_an_active_owner_wins() -> None:
    changelog = "execution-stream-allocations-changelog"
    a = assignment(
        {"trigger-execution": [0], changelog: [0, 1]},
        faust_user_data({"trigger-execution": [0], changelog: [0]}, {changelog: [1]}),
    )
    b = assignment(
        {"trigger-execution": [1], changelog: [0, 1]},
        faust_user_data({"trigger-execution": [1], changelog: [1]}, {changelog: [0]}),
    )
    decoded_a = decode_assignment(a)
    assert decoded_a.standbys == {(changelog, 1)}

    owned = owners([(WORKER_A, decoded_a), (WORKER_B, decode_assignment(b))])
    assert owned == {
        ("trigger-execution", 0): WORKER_A,
        ("trigger-execution", 1): WORKER_B,
        (changelog, 0): WORKER_A,
        (changelog, 1): WORKER_B,
    }


def test_bytes_of_another_protocol_give_no_partitions() -> None:
    assert decode_assignment(b"") is NOTHING
    assert decode_assignment(b"\x00\x07garbage") is NOTHING


def snapshot() -> GroupSnapshot:
    held = MemberPartitions(frozenset({("trigger-execution", 0), ("trigger-execution", 1)}), frozenset())
    return GroupSnapshot(
        "execution-stream",
        "Stable",
        [(WORKER_A, held)],
        {("trigger-execution", 0): 30, ("trigger-execution", 1): 50, ("execution-status", 0): 7},
    )


def report(tracker: StatusTracker | None = None) -> LagReport:
    group = build_group(
        snapshot(),
        partitions={"trigger-execution": [0, 1, 2], "execution-status": [0]},
        ends={
            ("trigger-execution", 0): 42,
            ("trigger-execution", 1): 50,
            ("trigger-execution", 2): 5,
            ("execution-status", 0): 9,
        },
        timestamps={("trigger-execution", 0): NOW - 245.0, ("execution-status", 0): NOW + 3.0},
        now=NOW,
        tracker=tracker or StatusTracker(),
    )
    return LagReport(NOW, "kafka:9092", (group,))


def test_a_report_has_per_partition_rows_and_per_topic_totals() -> None:
    document = report().to_document()
    [group] = document["groups"]
    topics = {topic["topic"]: topic for topic in group["topics"]}

    assert (group["lag"], group["status"], group["members"], group["observations"]) == (14, "UNKNOWN", 1, 1)
    assert topics["trigger-execution"]["lag"] == 12
    assert topics["trigger-execution"]["time_lag_seconds"] == 245.0
    rows = {p["partition"]: p for p in topics["trigger-execution"]["partitions"]}
    assert rows[0] == {
        "partition": 0,
        "committed_offset": 30,
        "log_end_offset": 42,
        "lag": 12,
        "time_lag_seconds": 245.0,
        "status": "UNKNOWN",
        "consumer_id": "faust-a",
        "host": "/10.0.0.1",
        "client_id": "faust-0.15.3",
    }
    assert (rows[1]["lag"], rows[1]["time_lag_seconds"], rows[1]["status"]) == (0, None, "OK")
    # Never committed: shown, judged by nobody, counted in no total.
    assert (rows[2]["committed_offset"], rows[2]["lag"], rows[2]["status"]) == (None, None, None)
    # Not owned by anyone; a timestamp from a clock ahead of ours is no negative age.
    [status_row] = topics["execution-status"]["partitions"]
    assert (status_row["consumer_id"], status_row["time_lag_seconds"]) == (None, 0.0)


def test_watching_accumulates_observations_into_real_statuses() -> None:
    tracker = StatusTracker(window=5)
    for _ in range(3):
        group = report(tracker).groups[0]
    statuses = {(p.topic, p.partition): p.status for p in group.partitions}
    assert statuses[("trigger-execution", 0)] is LagStatus.STALL  # owned, offset still
    assert statuses[("execution-status", 0)] is LagStatus.STOP  # nobody owns it
    assert group.status is LagStatus.STOP
    assert group.observations == 3


def test_text_rendering_is_a_table_with_dashes_for_what_is_unknown() -> None:
    text = render_text(report())
    lines = text.splitlines()
    assert lines[0] == "consumer lag at kafka:9092, 2026-09-21 14:13:20 UTC"
    assert lines[2].startswith("GROUP execution-stream  state Stable  members 1  status UNKNOWN  lag 14")
    assert lines[3].split() == [
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
    ]
    assert ["execution-status", "0", "7", "9", "2", "0.0s", "UNKNOWN", "-", "-", "-"] in [
        line.split() for line in lines
    ]
    assert [line.split()[:7] for line in lines if " total " in line] == [
        ["execution-status", "total", "-", "-", "2", "0.0s", "UNKNOWN"],
        ["trigger-execution", "total", "-", "-", "12", "4m05s", "UNKNOWN"],
    ]
    assert lines[-1] == UNKNOWN_NOTE


def test_json_rendering_is_one_line() -> None:
    rendered = render_json(report())
    assert "\n" not in rendered
    assert json.loads(rendered) == report().to_document()


def test_durations_are_short() -> None:
    assert [duration(s) for s in (None, 0.04, 59.96, 245.4, 7380, 3 * 86400 + 4 * 3600)] == [
        "-",
        "0.0s",
        "1m00s",
        "4m05s",
        "2h03m",
        "3d04h",
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"watch_seconds": 0.0}, "--watch must be greater than 0"),
        ({"count": 0}, "--count must be greater than 0"),
        ({"window": -1}, "--window must be greater than 0"),
        ({"groups": ()}, "name at least one consumer group"),
    ],
)
def test_options_that_make_no_sense_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LagOptions(**{"groups": ("execution-stream",), **options})
