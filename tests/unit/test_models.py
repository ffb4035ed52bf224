from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from execution_stream.domain.models import (
    MAX_ERROR_LENGTH,
    MAX_IDENTIFIER_LENGTH,
    MAX_NAME_LENGTH,
    Asset,
    ExecutionStatus,
    ExecutionStatusUpdate,
    TriggerEvent,
)

IDENTIFIER_FIELDS = [
    "tenant_id",
    "jit_event_id",
    "asset_id",
    "plan_slug",
    "plan_item_slug",
    "workflow_slug",
]
NAME_FIELDS = ["jit_event_name", "job_name", "job_runner"]


def event_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "tenant_id": "tenant-1",
        "jit_event_id": "event-1",
        "jit_event_name": "pull_request_created",
        "asset_id": "asset-1",
        "plan_slug": "jit-plan",
        "plan_item_slug": "item-code-vulnerability",
        "workflow_slug": "workflow-sast",
        "job_name": "static-code-analysis-python",
        "steps": [{"name": "Run Bandit", "uses": "ghcr.io/bandit:latest", "params": {"a": 1}}],
        "job_runner": "github_actions",
        "additional_attributes": {"nested": {"list": [1, "two", None]}},
    }
    payload.update(overrides)
    return payload


def rejected_fields(model: type[TriggerEvent | ExecutionStatusUpdate], payload: Any) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(payload)
    return {str(error["loc"][0]) for error in caught.value.errors()}


def test_valid_event() -> None:
    event = TriggerEvent.model_validate(event_payload())
    assert event.steps[0].params == {"a": 1}
    assert event.additional_attributes == {"nested": {"list": [1, "two", None]}}
    assert event.created_at is None


def test_unknown_fields_are_ignored() -> None:
    event = TriggerEvent.model_validate(event_payload(surprise="yes"))
    assert "surprise" not in event.model_dump()


@pytest.mark.parametrize("field", IDENTIFIER_FIELDS + NAME_FIELDS)
def test_empty_strings_rejected(field: str) -> None:
    assert rejected_fields(TriggerEvent, event_payload(**{field: ""})) == {field}


@pytest.mark.parametrize("field", IDENTIFIER_FIELDS)
def test_hash_in_identifiers_rejected(field: str) -> None:
    with pytest.raises(ValidationError, match=field) as caught:
        TriggerEvent.model_validate(event_payload(**{field: "a#b"}))
    assert "'#'" in str(caught.value)


@pytest.mark.parametrize("field", IDENTIFIER_FIELDS + NAME_FIELDS)
def test_oversize_rejected(field: str) -> None:
    bound = MAX_IDENTIFIER_LENGTH if field in IDENTIFIER_FIELDS else MAX_NAME_LENGTH
    assert TriggerEvent.model_validate(event_payload(**{field: "x" * bound}))
    assert rejected_fields(TriggerEvent, event_payload(**{field: "x" * (bound + 1)})) == {field}


@pytest.mark.parametrize("field", IDENTIFIER_FIELDS + NAME_FIELDS)
@pytest.mark.parametrize("control", ["\x00", "\n", "\x1f", "\x7f"])
def test_control_characters_rejected(field: str, control: str) -> None:
    assert rejected_fields(TriggerEvent, event_payload(**{field: f"a{control}b"})) == {field}


def test_steps_required_and_validated() -> None:
    assert rejected_fields(TriggerEvent, event_payload(steps=[])) == {"steps"}
    assert rejected_fields(TriggerEvent, event_payload(steps=[{"name": "x"}])) == {"steps"}


def test_created_at_naive_is_utc() -> None:
    event = TriggerEvent.model_validate(event_payload(created_at="2022-04-24T11:30:18.143407"))
    assert event.created_at == datetime(2022, 4, 24, 11, 30, 18, 143407, tzinfo=UTC)


def test_created_at_with_offset_is_converted_to_utc() -> None:
    moment = datetime(2022, 4, 24, 13, 30, tzinfo=timezone(timedelta(hours=2)))
    event = TriggerEvent.model_validate(event_payload(created_at=moment))
    assert event.created_at == moment
    assert event.created_at is not None
    assert event.created_at.tzinfo == UTC


@pytest.mark.parametrize(
    "created_at",
    [
        "1999-12-31T23:59:59.999999",
        datetime.now(UTC) + timedelta(hours=2),
        (datetime.now(UTC) + timedelta(hours=2)).replace(tzinfo=None),
    ],
)
def test_implausible_created_at_rejected(created_at: Any) -> None:
    assert rejected_fields(TriggerEvent, event_payload(created_at=created_at)) == {"created_at"}


def test_created_at_within_the_hour_accepted() -> None:
    soon = datetime.now(UTC) + timedelta(minutes=50)
    assert TriggerEvent.model_validate(event_payload(created_at=soon)).created_at == soon
    start = datetime(2000, 1, 1, tzinfo=UTC)
    assert TriggerEvent.model_validate(event_payload(created_at=start)).created_at == start


def test_asset_coerces_numeric_ids_and_ignores_unknown_fields() -> None:
    asset = Asset.model_validate(
        {
            "asset_id": 81282625,
            "tenant_id": 92,
            "asset_name": "execution-service",
            "asset_type": "repo",
            "vendor": "github",
            "owner": "jitsecurity",
            "installation_id": 24915845,
            "app_id": 161076,
            "user_vendor_id": 62615683,
            "is_archived": False,
        }
    )
    assert (asset.asset_id, asset.tenant_id) == ("81282625", "92")
    assert (asset.installation_id, asset.app_id, asset.user_vendor_id) == (
        "24915845",
        "161076",
        "62615683",
    )
    assert asset.user_vendor_name is None
    assert "is_archived" not in asset.model_dump()


def update_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "tenant_id": "tenant-1",
        "jit_event_id": "event-1",
        "execution_id": "490de6d6113c4deba97856c5b0cbf17c",
        "status": "completed",
        "at": "2022-04-24T11:30:53.416005",
    }
    payload.update(overrides)
    return payload


def test_status_update_defaults_and_naive_at() -> None:
    update = ExecutionStatusUpdate.model_validate(update_payload())
    assert update.status is ExecutionStatus.COMPLETED
    assert update.has_findings is False
    assert update.error is None
    assert update.at == datetime(2022, 4, 24, 11, 30, 53, 416005, tzinfo=UTC)


@pytest.mark.parametrize("field", ["tenant_id", "jit_event_id", "execution_id"])
@pytest.mark.parametrize("bad", ["", "a#b", "x" * (MAX_IDENTIFIER_LENGTH + 1)])
def test_status_update_ids_validated(field: str, bad: str) -> None:
    assert rejected_fields(ExecutionStatusUpdate, update_payload(**{field: bad})) == {field}


def test_status_update_rejects_unknown_status() -> None:
    assert rejected_fields(ExecutionStatusUpdate, update_payload(status="done")) == {"status"}


def test_status_update_keeps_the_head_of_a_long_error() -> None:
    error = "Traceback\n" + "x" * (2 * MAX_ERROR_LENGTH)
    update = ExecutionStatusUpdate.model_validate(update_payload(error=error))
    assert update.error == error[:MAX_ERROR_LENGTH]
