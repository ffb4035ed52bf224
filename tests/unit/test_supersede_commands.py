"""The allocation step turns what a supersede group replaces into cancel commands."""

from __future__ import annotations

from typing import Any

from execution_stream.pipeline.messages import AllocationRequest, Destination
from tests.support.pipeline_steps import allocation_step, handled, sent

GROUP = "a" * 32


def request(number: int, group: str | None = GROUP, *, in_progress: bool = False) -> AllocationRequest:
    return AllocationRequest(
        tenant_id="tenant-a",
        jit_event_id=f"event-{number}",
        execution_id=f"{number:032x}",
        job_runner="jit_runner",
        supersede_group=group,
        cancel_in_progress=in_progress,
    )


def commands(effects: Any) -> list[tuple[str, str, str | None]]:
    return [
        (c["execution_id"], c["reason"], c.get("superseded_by")) for c in sent(effects, Destination.COMMANDS)
    ]


def test_a_newer_request_of_the_group_cancels_the_one_waiting() -> None:
    step = allocation_step(limit=1)
    handled(step, request(0, group=None))  # holds the only slot
    assert commands(handled(step, request(1))) == []

    replaced = handled(step, request(2))

    assert commands(replaced) == [(f"{1:032x}", "superseded", f"{2:032x}")]
    [command] = sent(replaced, Destination.COMMANDS)
    assert (command["type"], command["tenant_id"], command["jit_event_id"]) == (
        "cancel",
        "tenant-a",
        "event-1",
    )


def test_one_running_is_canceled_only_with_cancel_in_progress() -> None:
    step = allocation_step(limit=2)
    handled(step, request(1, in_progress=False))
    assert commands(handled(step, request(2, in_progress=False))) == []  # 1 runs on

    in_progress = handled(step, request(3, in_progress=True))

    assert commands(in_progress) == [(f"{2:032x}", "superseded", f"{3:032x}")]


def test_other_groups_and_replays_cancel_nothing() -> None:
    step = allocation_step(limit=1)
    handled(step, request(0, group=None))
    handled(step, request(1))
    assert commands(handled(step, request(2, group="b" * 32))) == []
    assert commands(handled(step, request(1))) == []  # a replay of the one waiting
