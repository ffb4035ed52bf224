"""Burrow's lag statuses, each from a recorded sequence of (committed offset, log-end offset, time)."""

from __future__ import annotations

import pytest

from execution_stream.operations.lag_status import (
    GROUP_STATUS_METRIC,
    PARTITION_STATUS_METRIC,
    LagStatus,
    Observation,
    StatusTracker,
    evaluate,
    status_metric_samples,
    worst,
)

S = LagStatus
T0 = 1_790_000_000.0  # seconds since the epoch


def recorded(*rows: tuple[int, int], every: float = 10.0, owned: bool = True) -> list[Observation]:
    """Observations of one partition, one every `every` seconds: (committed offset, log-end offset)."""
    return [
        Observation(committed, end, T0 + number * every, owned)
        for number, (committed, end) in enumerate(rows)
    ]


# A consumer that keeps up: its lag touches zero between bursts.
CAUGHT_UP = recorded((100, 120), (120, 120), (130, 160), (170, 175))
# A consumer that is behind but gaining: commits move and the lag goes down.
CATCHING_UP = recorded((100, 400), (180, 420), (260, 440), (340, 460), (420, 480))
# Behind at a steady distance: commits move as fast as the producers write.
KEEPING_PACE = recorded((100, 150), (150, 200), (200, 250), (250, 300))
# Too slow: commits move but the lag grows at every observation.
FALLING_BEHIND = recorded((100, 150), (110, 200), (120, 260), (125, 330), (130, 400))
# Stuck: the committed offset does not move while records keep arriving.
STUCK = recorded((500, 510), (500, 540), (500, 580), (500, 600))
# Someone reset the group's offsets back to the start of the window.
RESET = recorded((300, 400), (350, 420), (20, 440), (60, 450))


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (CAUGHT_UP, S.OK),
        (CATCHING_UP, S.OK),
        (KEEPING_PACE, S.OK),
        (FALLING_BEHIND, S.WARN),
        (STUCK, S.STALL),
        (recorded(*[(o.committed_offset, o.log_end_offset) for o in STUCK], owned=False), S.STOP),
        (RESET, S.REWIND),
    ],
    ids=["zero-lag-in-window", "lag-shrinking", "lag-flat", "lag-growing", "stalled", "stopped", "rewind"],
)
def test_each_burrow_state_from_a_recorded_window(window: list[Observation], expected: LagStatus) -> None:
    assert evaluate(window) is expected


def test_stop_when_commits_stopped_arriving_for_longer_than_the_window_spans() -> None:
    """Burrow's rule for a stream of commits: the last one is older than the window is long."""
    commits = recorded((100, 150), (120, 170), (140, 190))  # spans 20 s
    assert evaluate(commits, now=commits[-1].timestamp + 15) is S.OK
    assert evaluate(commits, now=commits[-1].timestamp + 21) is S.STOP


def test_lag_zero_anywhere_in_the_window_is_ok_even_after_a_rewind() -> None:
    assert evaluate(recorded((300, 300), (20, 310), (40, 330))) is S.OK


def test_rewind_is_seen_before_a_stop_as_burrow_orders_its_rules() -> None:
    window = recorded((300, 400), (200, 400), (200, 400), owned=False)
    assert evaluate(window) is S.REWIND


def test_lag_growing_and_then_falling_back_is_not_a_warning() -> None:
    assert evaluate(recorded((100, 150), (110, 220), (200, 230))) is S.OK


def test_one_observation_is_ok_without_lag_and_unknown_with_lag() -> None:
    assert evaluate(recorded((120, 120))) is S.OK
    assert evaluate(recorded((100, 140))) is S.UNKNOWN
    assert evaluate(recorded((100, 140), owned=False)) is S.UNKNOWN
    assert evaluate([]) is S.UNKNOWN


def test_a_trend_needs_three_observations_but_a_rewind_shows_in_two() -> None:
    assert evaluate(recorded((500, 510), (500, 540))) is S.UNKNOWN
    assert evaluate(recorded((500, 510), (400, 540))) is S.REWIND
    assert evaluate(recorded((500, 510), (500, 540)), min_observations=2) is S.STALL


def test_the_tracker_slides_its_window_per_partition() -> None:
    tracker = StatusTracker(window=3)
    key = ("group", "topic", 0)
    sequence = recorded((300, 400), (350, 420), (20, 440), (60, 450), (60, 460), (60, 470), (100, 470))
    statuses = [tracker.observe(key, observation) for observation in sequence]

    # The rewind (350 -> 20) is seen while both its observations are in the 3-observation window;
    # then the offset moves (OK), stands still at 60 (STALL), and moves again (OK).
    assert statuses == [S.UNKNOWN, S.UNKNOWN, S.REWIND, S.REWIND, S.OK, S.STALL, S.OK]
    assert tracker.observations(key) == 3
    assert tracker.observe(("group", "topic", 1), sequence[0]) is S.UNKNOWN


def test_the_group_status_is_its_worst_partition() -> None:
    assert worst([S.OK, S.WARN, S.OK]) is S.WARN
    assert worst([S.WARN, S.STALL, S.UNKNOWN]) is S.STALL
    assert worst([S.STALL, S.REWIND]) is S.REWIND
    assert worst([S.REWIND, S.STOP, S.OK]) is S.STOP
    assert worst([S.OK, S.UNKNOWN]) is S.UNKNOWN
    assert worst([]) is S.OK


def test_statuses_are_published_as_prometheus_state_sets() -> None:
    samples = status_metric_samples(
        "workers", [("trigger-execution", 0, S.OK), ("trigger-execution", 1, S.STALL)]
    )

    current = {(s.name, s.labels.get("partition"), s.labels["status"]) for s in samples if s.value == 1.0}
    assert current == {
        (PARTITION_STATUS_METRIC, "0", "OK"),
        (PARTITION_STATUS_METRIC, "1", "STALL"),
        (GROUP_STATUS_METRIC, None, "STALL"),
    }
    assert len(samples) == 3 * len(LagStatus)
    assert all(s.labels["group"] == "workers" for s in samples)
    assert {s.labels.get("topic") for s in samples if s.name == PARTITION_STATUS_METRIC} == {
        "trigger-execution"
    }
