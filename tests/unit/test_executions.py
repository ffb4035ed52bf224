from datetime import UTC, datetime, timedelta, timezone

import pytest

from execution_stream.domain.executions import (
    AssetMismatchError,
    TransitionNotAllowedError,
    already_changed,
    apply_status,
    build_execution,
    previous_status,
)
from execution_stream.domain.identity import execution_id_for
from execution_stream.domain.lifecycle import is_transition_allowed
from execution_stream.domain.models import (
    Asset,
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    Step,
    TriggerEvent,
)
from execution_stream.domain.timestamps import epoch_seconds, format_timestamp, parse_timestamp

CREATED = datetime(2022, 4, 24, 11, 30, 18, 143407, tzinfo=UTC)
LATER = datetime(2022, 4, 24, 11, 31, 0, tzinfo=UTC)
S = ExecutionStatus


def make_event() -> TriggerEvent:
    return TriggerEvent(
        tenant_id="tenant-1",
        jit_event_id="event-1",
        jit_event_name="pull_request_created",
        asset_id="asset-1",
        plan_slug="jit-plan",
        plan_item_slug="item-code-vulnerability",
        workflow_slug="workflow-sast",
        job_name="static-code-analysis-python",
        steps=[
            Step(name="Run Bandit", uses="ghcr.io/bandit:latest", params={"args": "-r"}),
            Step(name="Upload", uses="ghcr.io/upload:1"),
        ],
        job_runner="github_actions",
        additional_attributes={"branch": "main", "commits": {"head_sha": "abc"}},
    )


def make_asset(**overrides: str) -> Asset:
    fields = {
        "asset_id": "asset-1",
        "tenant_id": "tenant-1",
        "asset_name": "execution-service",
        "asset_type": "repo",
        "vendor": "github",
        "owner": "jitsecurity",
    }
    return Asset.model_validate(fields | overrides)


def make_execution(status: ExecutionStatus = S.PENDING) -> Execution:
    execution = build_execution(make_event(), make_asset(), CREATED)
    return execution.model_copy(update={"status": status})


def test_build_execution() -> None:
    event = make_event()
    execution = build_execution(event, make_asset(), CREATED)
    assert execution.status is S.PENDING
    assert execution.execution_id == execution_id_for(event)
    assert (execution.control_name, execution.control_image) == (
        "Run Bandit",
        "ghcr.io/bandit:latest",
    )
    assert (execution.asset_name, execution.asset_type, execution.vendor) == (
        "execution-service",
        "repo",
        "github",
    )
    assert execution.created_at == "2022-04-24T11:30:18.143407"
    assert execution.created_at_ts == 1650799818
    # The trigger's attributes, with where the asset says its jobs go.
    assert execution.additional_attributes == {
        **event.additional_attributes,
        "owner": "jitsecurity",
        "original_repository": "execution-service",
    }
    assert execution.steps == event.steps
    assert execution.entity_type == "job"
    assert execution.has_findings is False
    assert execution.dispatched_at is None
    assert execution.registered_at is None
    assert execution.completed_at is None
    assert execution.error is None


def test_build_execution_does_not_share_mutable_state_with_the_event() -> None:
    event = make_event()
    execution = build_execution(event, make_asset(), CREATED)
    event.additional_attributes["commits"]["head_sha"] = "changed"
    event.steps[0].params["args"] = "changed"
    assert execution.additional_attributes["commits"]["head_sha"] == "abc"
    assert execution.steps[0].params["args"] == "-r"


@pytest.mark.parametrize("override", [{"tenant_id": "tenant-2"}, {"asset_id": "asset-2"}])
def test_build_execution_refuses_a_mismatched_asset(override: dict[str, str]) -> None:
    with pytest.raises(AssetMismatchError):
        build_execution(make_event(), make_asset(**override), CREATED)


TIME_FIELD = {
    S.DISPATCHED: "dispatched_at",
    S.RUNNING: "registered_at",
    S.COMPLETED: "completed_at",
    S.FAILED: "completed_at",
    S.CANCELED: "completed_at",
}
ALLOWED = [(c, n) for c in S for n in S if is_transition_allowed(c, n)]
REFUSED = [(c, n) for c in S for n in S if not is_transition_allowed(c, n)]


@pytest.mark.parametrize(("current", "new"), ALLOWED)
def test_apply_allowed_status(current: ExecutionStatus, new: ExecutionStatus) -> None:
    execution = make_execution(current)
    updated = apply_status(execution, new, LATER, has_findings=True, error="boom")
    assert updated.status is new
    assert (updated.has_findings, updated.error) == (True, "boom")
    field = TIME_FIELD[new]
    assert updated.model_dump()[field] == "2022-04-24T11:31:00.000000"
    assert updated.model_dump()[f"{field}_ts"] == epoch_seconds(LATER)
    untouched = set(TIME_FIELD.values()) - {field}
    assert all(getattr(updated, name) is None for name in untouched)
    assert execution.status is current


@pytest.mark.parametrize(("current", "new"), REFUSED)
def test_apply_refused_status(current: ExecutionStatus, new: ExecutionStatus) -> None:
    execution = make_execution(current)
    with pytest.raises(TransitionNotAllowedError) as caught:
        apply_status(execution, new, LATER)
    assert (caught.value.current, caught.value.requested) == (current, new)
    assert isinstance(caught.value, ValueError)


def test_apply_status_treats_naive_as_utc() -> None:
    updated = apply_status(make_execution(), S.DISPATCHED, LATER.replace(tzinfo=None))
    assert updated.dispatched_at_ts == epoch_seconds(LATER)


def test_execution_event_takes_the_time_of_the_status() -> None:
    dispatched = apply_status(make_execution(), S.DISPATCHED, LATER)
    failed = apply_status(dispatched, S.FAILED, LATER + timedelta(seconds=5), error="timeout")
    event = ExecutionEvent.from_change(failed, S.DISPATCHED)
    assert event.status is S.FAILED
    assert event.previous_status is S.DISPATCHED
    assert event.at == "2022-04-24T11:31:05.000000"
    assert event.error == "timeout"
    assert event.execution_id == failed.execution_id
    created = ExecutionEvent.from_change(make_execution(), None)
    assert created.at == "2022-04-24T11:30:18.143407"
    assert created.previous_status is None


def test_format_timestamp_keeps_zero_microseconds() -> None:
    assert format_timestamp(datetime(2022, 4, 24, 11, 30, 18, tzinfo=UTC)) == ("2022-04-24T11:30:18.000000")


def test_format_timestamp_converts_to_utc_and_treats_naive_as_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_timestamp(datetime(2022, 4, 24, 13, 30, 18, 5, tzinfo=plus_two)) == (
        "2022-04-24T11:30:18.000005"
    )
    assert format_timestamp(datetime(2022, 4, 24, 11, 30, 18, 5)) == "2022-04-24T11:30:18.000005"


def test_epoch_seconds_floors() -> None:
    assert epoch_seconds(datetime(2022, 4, 24, 11, 30, 18, 999999, tzinfo=UTC)) == 1650799818
    assert epoch_seconds(datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)) == -1


def test_parse_timestamp_round_trips() -> None:
    moment = datetime(2022, 4, 24, 11, 30, 18, tzinfo=UTC)
    parsed = parse_timestamp(format_timestamp(moment))
    assert parsed == moment
    assert parsed.tzinfo == UTC
    assert parse_timestamp("2022-04-24T13:30:18+02:00") == moment


@pytest.mark.parametrize(
    ("path", "expected_previous"),
    [
        ([S.DISPATCHED], S.PENDING),
        ([S.DISPATCHED, S.RUNNING], S.DISPATCHED),
        ([S.DISPATCHED, S.RUNNING, S.COMPLETED], S.RUNNING),
        ([S.DISPATCHED, S.FAILED], S.DISPATCHED),
        ([S.FAILED], S.PENDING),
        ([S.CANCELED], S.PENDING),
    ],
)
def test_previous_status_is_read_from_the_recorded_moments(
    path: list[ExecutionStatus], expected_previous: ExecutionStatus
) -> None:
    execution = make_execution()
    for minute, status in enumerate(path):
        execution = apply_status(execution, status, LATER + timedelta(minutes=minute))
    assert previous_status(execution) is expected_previous


def test_already_changed_knows_the_same_change_from_another_report() -> None:
    running = apply_status(apply_status(make_execution(), S.DISPATCHED, LATER), S.RUNNING, LATER)
    assert already_changed(running, S.RUNNING, LATER)
    assert not already_changed(running, S.RUNNING, LATER + timedelta(microseconds=1))
    assert not already_changed(running, S.DISPATCHED, LATER)
    assert not already_changed(running, S.COMPLETED, LATER)
