"""The seed's example item is what the service really stored: ours must match it field for field."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from execution_stream.adapters.dynamodb_item_codec import execution_from_item, execution_to_item
from execution_stream.domain.executions import apply_status, build_execution
from execution_stream.domain.identity import derive_execution_id
from execution_stream.domain.models import Asset, Execution, ExecutionStatus, Step, TriggerEvent
from execution_stream.domain.timestamps import epoch_seconds, parse_timestamp
from execution_stream.domain.trace import TraceContext

SEED_ITEM_PATH = Path(__file__).parent / "golden" / "seed_example_item.json"
CREATED = datetime(2022, 4, 24, 11, 30, 18, 143407, tzinfo=UTC)
DISPATCHED = datetime(2022, 4, 24, 11, 30, 20, 500000, tzinfo=UTC)
REGISTERED = datetime(2022, 4, 24, 11, 30, 51, 20502, tzinfo=UTC)
COMPLETED = datetime(2022, 4, 24, 11, 30, 53, 416005, tzinfo=UTC)
# Checked separately below: our execution_id is derived (the seed's was random), and the
# seed's epoch seconds disagree with its own timestamp strings.
DERIVED_FIELDS = {"execution_id", "SK", "created_at_ts", "registered_at_ts", "completed_at_ts"}
# The seed's *_ts are true epochs of its strings read as UTC+3 wall-clock time (08:30:18Z for
# "11:30:18"); our strings are UTC, so our *_ts are exactly this much later than the seed's.
SEED_CLOCK_OFFSET_SECONDS = 3 * 3600
# Not in the seed: GSI5PK, the key of GSI5, which finds one execution by tenant and id for
# GET /executions/{id} (the seed's four GSIs only list). Every item we store carries it.
ADDED_KEY_ATTRIBUTES = {"GSI5PK"}


@pytest.fixture(scope="module")
def seed_item() -> dict[str, Any]:
    item: dict[str, Any] = json.loads(SEED_ITEM_PATH.read_text())
    return item


def trigger_event_from(seed: dict[str, Any]) -> TriggerEvent:
    return TriggerEvent(
        tenant_id=seed["tenant_id"],
        jit_event_id=seed["jit_event_id"],
        jit_event_name=seed["jit_event_name"],
        asset_id=seed["asset_id"],
        plan_slug=seed["plan_slug"],
        plan_item_slug=seed["plan_item_slug"],
        workflow_slug=seed["workflow_slug"],
        job_name=seed["job_name"],
        steps=[Step.model_validate(step) for step in seed["steps"]],
        job_runner=seed["job_runner"],
        additional_attributes=seed["additional_attributes"],
    )


def asset_from(seed: dict[str, Any]) -> Asset:
    return Asset(
        asset_id=seed["asset_id"],
        tenant_id=seed["tenant_id"],
        asset_name="execution-service",
        asset_type="repo",
        vendor="github",
        owner="jitsecurity",
        installation_id="24915845",
        app_id="161076",
        user_vendor_id="62615683",
        user_vendor_name="jitsecurity",
    )


def completed_execution(seed: dict[str, Any]) -> Execution:
    execution = build_execution(trigger_event_from(seed), asset_from(seed), CREATED)
    execution = apply_status(execution, ExecutionStatus.DISPATCHED, DISPATCHED)
    execution = apply_status(execution, ExecutionStatus.RUNNING, REGISTERED)
    return apply_status(execution, ExecutionStatus.COMPLETED, COMPLETED, has_findings=False)


def as_dynamodb_returns_it(value: Any) -> Any:
    """Mimic boto3's deserializer: every number comes back as a Decimal."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {key: as_dynamodb_returns_it(nested) for key, nested in value.items()}
    return [as_dynamodb_returns_it(nested) for nested in value]


def test_item_matches_the_seed_field_for_field(seed_item: dict[str, Any]) -> None:
    item = execution_to_item(completed_execution(seed_item))
    for name, expected in seed_item.items():
        if name not in DERIVED_FIELDS:
            assert item[name] == expected, name
    assert json.loads(json.dumps(item)) == item


def test_item_has_the_seed_keys_plus_only_dispatch_time_and_gsi5(seed_item: dict[str, Any]) -> None:
    item = execution_to_item(completed_execution(seed_item))
    assert set(seed_item) - set(item) == set()
    assert set(item) - set(seed_item) == {"dispatched_at", "dispatched_at_ts", *ADDED_KEY_ATTRIBUTES}
    assert item["dispatched_at"] == "2022-04-24T11:30:20.500000"
    assert item["dispatched_at_ts"] == epoch_seconds(DISPATCHED)


def test_gsi5pk_names_the_tenant_and_the_execution(seed_item: dict[str, Any]) -> None:
    item = execution_to_item(completed_execution(seed_item))
    assert item["GSI5PK"] == f"TENANT#{seed_item['tenant_id']}#EXECUTION#{item['execution_id']}"


def test_execution_id_is_derived_and_embedded_in_the_keys(seed_item: dict[str, Any]) -> None:
    item = execution_to_item(completed_execution(seed_item))
    expected_id = derive_execution_id(
        seed_item["tenant_id"],
        seed_item["jit_event_id"],
        seed_item["asset_id"],
        seed_item["workflow_slug"],
        seed_item["job_name"],
    )
    assert item["execution_id"] == expected_id
    assert item["SK"] == f"JIT_EVENT#{seed_item['jit_event_id']}#RUN#{expected_id}"


@pytest.mark.parametrize(
    "ts_field", ["created_at_ts", "dispatched_at_ts", "registered_at_ts", "completed_at_ts"]
)
def test_epoch_seconds_agree_with_the_strings(seed_item: dict[str, Any], ts_field: str) -> None:
    item = execution_to_item(completed_execution(seed_item))
    moment = parse_timestamp(item[ts_field.removesuffix("_ts")])
    assert item[ts_field] == epoch_seconds(moment)


@pytest.mark.parametrize("ts_field", ["created_at_ts", "completed_at_ts"])
def test_epoch_seconds_differ_from_the_seed_only_by_its_clock(
    seed_item: dict[str, Any], ts_field: str
) -> None:
    item = execution_to_item(completed_execution(seed_item))
    assert item[ts_field] - seed_item[ts_field] == SEED_CLOCK_OFFSET_SECONDS


def test_registered_at_ts_is_consistent(seed_item: dict[str, Any]) -> None:
    item = execution_to_item(completed_execution(seed_item))
    # The seed's registered_at_ts (1650789018) is its created_at_ts, not its registered_at's.
    assert seed_item["registered_at_ts"] == seed_item["created_at_ts"]
    assert item["registered_at_ts"] == epoch_seconds(REGISTERED) == 1650799851


def test_round_trip_is_exact(seed_item: dict[str, Any]) -> None:
    execution = completed_execution(seed_item)
    assert execution_from_item(execution_to_item(execution)) == execution


def test_round_trip_through_dynamodb_numbers(seed_item: dict[str, Any]) -> None:
    execution = completed_execution(seed_item).model_copy(
        update={"additional_attributes": {"count": 3, "ratio": 0.25, "flag": True, "list": [1, 2.5]}}
    )
    stored = as_dynamodb_returns_it(execution_to_item(execution))
    assert isinstance(stored["created_at_ts"], Decimal)
    restored = execution_from_item(stored)
    assert restored == execution
    assert type(restored.additional_attributes["count"]) is int
    assert type(restored.additional_attributes["ratio"]) is float
    assert restored.additional_attributes["flag"] is True
    assert [type(value) for value in restored.additional_attributes["list"]] == [int, float]


def test_the_seed_item_itself_decodes(seed_item: dict[str, Any]) -> None:
    execution = execution_from_item(as_dynamodb_returns_it(seed_item))
    assert execution.status is ExecutionStatus.COMPLETED
    assert execution.execution_id == seed_item["execution_id"]
    assert execution.error is None
    # Stored again, the seed's execution gains GSI5PK (see ADDED_KEY_ATTRIBUTES) and nothing else.
    item = execution_to_item(execution)
    assert {name: item.pop(name) for name in ADDED_KEY_ATTRIBUTES} == {
        "GSI5PK": f"TENANT#{seed_item['tenant_id']}#EXECUTION#{seed_item['execution_id']}"
    }
    assert item == seed_item


def test_none_fields_are_omitted(seed_item: dict[str, Any]) -> None:
    pending = build_execution(trigger_event_from(seed_item), asset_from(seed_item), CREATED)
    item = execution_to_item(pending)
    assert not {"error", "completed_at", "registered_at", "dispatched_at_ts"} & set(item)
    assert item["GSI2PK"].endswith("#STATUS#pending")


def test_the_trace_context_is_stored_as_two_plain_attributes_and_read_back(seed_item: dict[str, Any]) -> None:
    trace = TraceContext("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "congo=t61rcWkgMzE")
    pending = build_execution(trigger_event_from(seed_item), asset_from(seed_item), CREATED, trace)

    item = execution_to_item(pending)

    assert (item["traceparent"], item["tracestate"]) == (trace.traceparent, trace.tracestate)
    assert execution_from_item(as_dynamodb_returns_it(item)).trace == trace


def test_an_item_stored_without_a_trace_context_gets_one_derived_from_its_id(
    seed_item: dict[str, Any],
) -> None:
    execution = execution_from_item(as_dynamodb_returns_it(seed_item))

    assert (execution.traceparent, execution.tracestate) == (None, None)
    assert execution.trace == TraceContext.derived(seed_item["execution_id"])
