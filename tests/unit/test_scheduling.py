"""Priority classes and supersede groups as the settings give them (pure)."""

from __future__ import annotations

import pytest

from execution_stream.domain.executions import build_execution
from execution_stream.domain.scheduling import Concurrency, SchedulingPolicy, group_key
from execution_stream.settings import InvalidSettingsError, load_settings
from tests.support.factories import BASE_TIME, asset, trigger_event

POLICY = SchedulingPolicy(
    default_priority=1,
    event_priorities={"pull_request_updated": 5},
    supersede_events=frozenset({"pull_request_updated"}),
    supersede_in_progress_events=frozenset({"push"}),
)


def test_a_triggers_own_priority_wins_then_its_events_then_the_default() -> None:
    assert POLICY.priority_of(trigger_event(jit_event_name="nightly", priority=7)) == 7
    assert POLICY.priority_of(trigger_event(jit_event_name="pull_request_updated")) == 5
    assert POLICY.priority_of(trigger_event(jit_event_name="nightly")) == 1


def test_a_priority_outside_the_classes_is_refused() -> None:
    with pytest.raises(ValueError, match="priority"):
        trigger_event(priority=10)


def test_only_the_named_events_supersede_and_only_the_second_list_in_progress() -> None:
    def concurrency(name: str, number: int = 1) -> Concurrency | None:
        event = trigger_event(jit_event_name=name, jit_event_id=f"event-{number}")
        return POLICY.concurrency_of(build_execution(event, asset(), BASE_TIME))

    updated, pushed = concurrency("pull_request_updated"), concurrency("push")
    assert updated is not None
    assert not updated.cancel_in_progress
    assert pushed is not None
    assert pushed.cancel_in_progress
    assert concurrency("nightly") is None
    assert concurrency("pull_request_updated", 2) == updated


def test_the_group_is_one_pull_request_of_one_assets_plan_item_and_job() -> None:
    def key(**changes: str) -> str:
        attributes = {"owner": "jitsecurity", "pull_request_number": "22"}
        attributes.update({k: v for k, v in changes.items() if k == "pull_request_number"})
        fields = {k: v for k, v in changes.items() if k != "pull_request_number"}
        event = trigger_event(additional_attributes=attributes, **fields)
        return group_key(build_execution(event, asset(asset_id=event.asset_id), BASE_TIME))

    same = key()
    assert key(jit_event_id="event-9") == same
    others = [
        key(pull_request_number="23"),
        key(asset_id="asset-2"),
        key(plan_item_slug="item-other"),
        key(job_name="another-job"),
    ]
    assert same not in others
    assert len(set(others)) == 4
    assert "#" not in same


def test_the_settings_take_lists_and_priorities(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTION_STREAM_SUPERSEDE_EVENTS", "pull_request_updated, push")
    monkeypatch.setenv("EXECUTION_STREAM_SUPERSEDE_IN_PROGRESS_EVENTS", '["push"]')
    monkeypatch.setenv("EXECUTION_STREAM_EVENT_PRIORITIES", '{"nightly": 0, "push": 9}')
    settings = load_settings()
    assert settings.supersede_events == ["pull_request_updated", "push"]
    assert settings.supersede_in_progress_events == ["push"]
    assert settings.event_priorities == {"nightly": 0, "push": 9}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"push": 10}', "must be 0-9"),
        ('{"push": true}', "must be 0-9"),
        ("[1]", "JSON object"),
        ("{", "not JSON"),
    ],
)
def test_a_bad_priority_setting_names_itself(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("EXECUTION_STREAM_EVENT_PRIORITIES", value)
    with pytest.raises(InvalidSettingsError, match=f"EXECUTION_STREAM_EVENT_PRIORITIES.*{message}"):
        load_settings()
