"""Why pending executions wait, in the listing and in GET /executions/{id}, with an in-memory store."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator

from execution_stream.api.items import api_item
from execution_stream.api.openapi import openapi_document
from execution_stream.domain.executions import apply_status
from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.domain.store import QueueClass, QueueSnapshot, RepositoryUnavailableError
from tests.support.api import bearer, listed, running_api
from tests.support.factories import BASE_TIME, execution
from tests.support.factories import queue_snapshot as snapshot
from tests.support.fake_store import FakeStore

S = ExecutionStatus
RUNNER = "github_actions"
HASHED_RUNNER = "runner#a"


def validator(name: str) -> OAS31Validator:
    return OAS31Validator({"$ref": f"#/components/schemas/{name}", **openapi_document()})


def queued(number: int, index: int, runner: str = RUNNER, tenant_id: str = "tenant-a") -> Execution:
    return execution(tenant_id, number).model_copy(update={"queue_index": index, "job_runner": runner})


def mixed() -> list[Execution]:
    """Newest last: each kind of pending execution, and a dispatched one that was queued."""
    return [
        queued(0, 5),  # passed by the head: admitted
        queued(1, 7),
        queued(2, 9),
        queued(3, 4, HASHED_RUNNER),
        execution("tenant-a", 4).model_copy(update={"waiting_for_asset": "asset-4", "asset_name": ""}),
        execution("tenant-a", 5),  # never queued
        apply_status(queued(6, 8), S.DISPATCHED, BASE_TIME),
        queued(7, 12, "runner-without-snapshot"),
    ]


def mixed_reader(executions: list[Execution]) -> FakeStore:
    snapshots = [
        snapshot(head_index=7, limit=3, in_use=3),
        snapshot(job_runner=HASHED_RUNNER, head_index=4, limit=1, in_use=1),
        snapshot(tenant_id="tenant-b", head_index=0),
    ]
    return FakeStore(executions, snapshots)


async def get(reader: FakeStore, path: str, headers: dict[str, str] | None) -> tuple[int, Any]:
    async with (
        running_api(reader) as client,
        client.get(path, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_pending_items_say_why_they_wait_and_where_they_stand() -> None:
    executions = mixed()
    reader = mixed_reader(executions)
    status, body = await get(reader, "/executions", bearer("tenant-a"))
    assert status == 200
    validator("ExecutionPage").validate(body)
    by_id = {item["execution_id"]: item for item in body["data"]}
    capacity = {"waiting_reason": "capacity"}
    expected = [
        listed(executions[0]),
        listed(executions[1], **capacity, queue_position=1, limit=3, in_use=3),
        listed(executions[2], **capacity, queue_position=3, limit=3, in_use=3),
        listed(executions[3], **capacity, queue_position=1, limit=1, in_use=1),
        listed(executions[4], waiting_reason="asset"),
        listed(executions[5]),
        listed(executions[6]),
        listed(executions[7]),
    ]
    assert [by_id[e.execution_id] for e in executions] == expected
    # One look-up for the page, of the runners of queued pending executions only.
    assert reader.snapshot_requests == [
        ("tenant-a", frozenset({RUNNER, HASHED_RUNNER, "runner-without-snapshot"}))
    ]


async def test_the_workers_bookkeeping_stays_out_and_other_statuses_have_no_waiting_fields() -> None:
    executions = mixed()
    _, body = await get(mixed_reader(executions), "/executions", bearer())
    for item in body["data"]:
        assert not {"waiting_for_asset", "queue_index"} & set(item)
        has_fields = {"waiting_reason", "queue_position"} <= set(item)
        assert has_fields is (item["status"] == "pending")


async def test_a_page_without_queued_executions_reads_no_snapshot() -> None:
    reader = FakeStore([execution("tenant-a", n) for n in range(3)])
    status, body = await get(reader, "/executions", bearer())
    assert status == 200
    assert [item["waiting_reason"] for item in body["data"]] == [None] * 3
    assert reader.snapshot_requests == []


async def test_one_execution_by_id_is_the_listed_item_with_its_wait() -> None:
    executions = mixed()
    reader = mixed_reader(executions)
    path = f"/executions/{executions[2].execution_id}"
    status, body = await get(reader, path, bearer("tenant-a"))
    assert status == 200
    validator("Execution").validate(body)
    assert body == listed(executions[2], waiting_reason="capacity", queue_position=3, limit=3, in_use=3)
    assert reader.finds == [("tenant-a", executions[2].execution_id)]
    assert reader.snapshot_requests == [("tenant-a", frozenset({RUNNER}))]


async def test_a_dispatched_execution_by_id_has_no_waiting_fields() -> None:
    executions = mixed()
    path = f"/executions/{executions[6].execution_id}"
    status, body = await get(mixed_reader(executions), path, bearer())
    assert (status, body) == (200, listed(executions[6]))
    assert "waiting_reason" not in body


async def test_another_tenants_id_is_as_unknown_as_an_unknown_one() -> None:
    theirs = execution("tenant-b", 0)
    reader = FakeStore([theirs])
    unknown = "0" * 32
    _, mine_ok = await get(reader, f"/executions/{theirs.execution_id}", bearer("tenant-b"))
    assert mine_ok["tenant_id"] == "tenant-b"
    answers = []
    for execution_id in (theirs.execution_id, unknown):
        status, body = await get(reader, f"/executions/{execution_id}", bearer("tenant-a"))
        validator("Error").validate(body)
        answers.append((status, body["error"]["code"], body["error"]["message"].replace(execution_id, "ID")))
    assert answers[0] == answers[1] == (404, "not_found", "no execution 'ID'")
    assert "tenant-b" not in json.dumps(answers)
    assert reader.finds[1:] == [("tenant-a", theirs.execution_id), ("tenant-a", unknown)]


@pytest.mark.parametrize(
    "execution_id",
    [
        "0" * 31,
        "0" * 33,
        "A" * 32,
        "g" * 32,
        "01234567-89ab-cdef-0123-456789abcdef",
        "0" * 32 + "%0A",
        "%20" + "0" * 32,
        "TENANT%23tenant-b",
    ],
)
async def test_an_id_that_is_not_32_lowercase_hex_is_400(execution_id: str) -> None:
    reader = FakeStore()
    status, body = await get(reader, f"/executions/{execution_id}", bearer())
    assert status == 400
    assert body["error"]["code"] == "invalid_execution_id"
    assert "32 lowercase hexadecimal" in body["error"]["message"]
    assert reader.finds == []


async def test_query_parameters_are_refused_on_one_execution() -> None:
    reader = FakeStore()
    path = f"/executions/{'a' * 32}?tenant_id=tenant-b"
    status, body = await get(reader, path, bearer())
    assert (status, body["error"]["code"]) == (400, "unknown_parameter")
    assert "none is allowed" in body["error"]["message"]
    assert reader.finds == []


async def test_one_execution_needs_a_valid_token_before_anything_else() -> None:
    reader = FakeStore([execution("tenant-a", 0)])
    for headers in (None, bearer(expires_in=-60)):
        status, body = await get(reader, "/executions/not-an-id", headers)
        assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert reader.finds == []


class UnreadableStore(FakeStore):
    """Lists, but cannot read one execution or a queue snapshot."""

    async def find(self, tenant_id: str, execution_id: str) -> Execution | None:
        raise RepositoryUnavailableError("fake DynamoDB is down")

    async def queue_snapshots(self, tenant_id: str, runners: frozenset[str]) -> dict[str, QueueSnapshot]:
        raise RepositoryUnavailableError("fake DynamoDB is down")


async def test_an_unavailable_reader_is_503_for_both_routes() -> None:
    executions = [queued(0, 3)]
    for path in ("/executions", f"/executions/{executions[0].execution_id}"):
        status, body = await get(UnreadableStore(executions), path, bearer())
        assert (status, body["error"]["code"]) == (503, "service_unavailable"), path


class LeakingReader(FakeStore):
    async def find(self, tenant_id: str, execution_id: str) -> Execution | None:
        return next(iter(self.items.values()))


async def test_another_tenants_execution_from_below_is_never_shown() -> None:
    theirs = execution("tenant-b", 0)
    path = f"/executions/{theirs.execution_id}"
    status, body = await get(LeakingReader([theirs]), path, bearer("tenant-a"))
    assert (status, body["error"]["code"]) == (500, "internal_error")
    assert "tenant-b" not in json.dumps(body)


async def test_one_execution_is_counted_under_its_route_pattern() -> None:
    ids = ["a" * 32, "b" * 32]
    async with running_api(FakeStore()) as client:
        for execution_id in ids:
            async with client.get(f"/executions/{execution_id}", headers=bearer()) as response:
                assert response.status == 404
        async with client.get("/metrics") as response:
            text = await response.text()
    assert 'route="/executions/{execution_id}",status="404"} 2.0' in text
    assert not any(execution_id in text for execution_id in ids)


def test_the_trace_context_of_the_trigger_is_not_shown() -> None:
    traced = execution("tenant-a", 1).model_copy(
        update={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "a=1"}
    )
    item = api_item(traced, None)
    assert not {"traceparent", "tracestate"} & set(item)
    assert item["execution_id"] == traced.execution_id


async def test_a_position_counts_higher_priority_classes_and_the_class_stays_out_of_the_item() -> None:
    classes = {0: QueueClass(7, 3), 4: QueueClass(10, 2)}
    executions = [
        queued(0, 8).model_copy(update={"queue_priority": 0}),
        queued(1, 11).model_copy(update={"queue_priority": 4}),
        queued(2, 9),  # stored before classes: class 0
    ]
    reader = FakeStore(executions, [replace(snapshot(head_index=7, limit=2, in_use=2), classes=classes)])
    _, body = await get(reader, "/executions", bearer("tenant-a"))
    by_id = {item["execution_id"]: item for item in body["data"]}
    assert [by_id[e.execution_id]["queue_position"] for e in executions] == [4, 2, 5]
    assert not any("queue_priority" in item for item in body["data"])
    validator("ExecutionPage").validate(body)
