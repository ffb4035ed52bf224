"""The application with an in-memory store: body shape, errors, health, the access log."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from openapi_schema_validator import OAS31Validator

from execution_stream.api import handlers
from execution_stream.api.openapi import openapi_document
from execution_stream.api.ports import ExecutionReader
from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.domain.store import ExecutionQuery
from tests.support.api import bearer, listed, running_api, token
from tests.support.factories import execution
from tests.support.fake_store import FakeStore

S = ExecutionStatus


def stored(tenant_id: str, count: int, **fields: Any) -> list[Execution]:
    return [execution(tenant_id, number).model_copy(update=fields) for number in range(count)]


def schema_of(name: str) -> dict[str, Any]:
    document = openapi_document()
    return {"$ref": f"#/components/schemas/{name}", "components": document["components"]}


def assert_error(body: Any, code: str, *words: str) -> None:
    OAS31Validator(schema_of("Error")).validate(body)
    assert body["error"]["code"] == code
    for word in words:
        assert word in body["error"]["message"]


async def get(
    repository: ExecutionReader, path: str, headers: dict[str, str] | None = None
) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with running_api(repository) as client, client.get(path, headers=headers) as response:
        return response.status, await response.json(), response


async def test_lists_the_tenants_executions_newest_first() -> None:
    mine = stored("tenant-a", 5)
    repository = FakeStore([*mine, *stored("tenant-b", 3)])
    status, body, _ = await get(repository, "/executions", bearer("tenant-a"))
    assert status == 200
    OAS31Validator(schema_of("ExecutionPage")).validate(body)
    assert body["data"] == [listed(e) for e in reversed(mine)]
    assert body["metadata"] == {"count": 5, "after": None}
    assert repository.queries == [ExecutionQuery("tenant-a", limit=20)]


async def test_items_have_the_seed_item_fields_and_keys() -> None:
    repository = FakeStore(stored("tenant-a", 1))
    _, body, _ = await get(repository, "/executions", bearer("tenant-a"))
    item = body["data"][0]
    for name in ("PK", "SK", "GSI1PK", "GSI4SK", "created_at", "created_at_ts", "control_image"):
        assert name in item
    assert item["PK"] == "TENANT#tenant-a"


async def test_filters_and_limit_reach_the_repository() -> None:
    repository = FakeStore()
    status, body, _ = await get(
        repository, "/executions?status=failed&plan_item_slug=item-x&limit=7", bearer()
    )
    assert (status, body["data"]) == (200, [])
    assert repository.queries == [ExecutionQuery("tenant-a", S.FAILED, "item-x", 7)]


async def test_pages_follow_each_other_to_the_end() -> None:
    mine = stored("tenant-a", 10, status=S.RUNNING)
    repository = FakeStore([*mine, *stored("tenant-a", 14)[10:]])  # pending ones: other filter
    seen: list[str] = []
    path = "/executions?status=running&limit=3"
    async with running_api(repository) as client:
        while True:
            async with client.get(path, headers=bearer("tenant-a")) as response:
                body = await response.json()
            assert response.status == 200
            assert body["metadata"]["count"] == len(body["data"])
            seen += [item["execution_id"] for item in body["data"]]
            if body["metadata"]["after"] is None:
                break
            path = f"/executions?status=running&limit=3&after={body['metadata']['after']}"
    assert seen == [e.execution_id for e in reversed(mine)]


async def test_a_cursor_cannot_change_hands_or_filter() -> None:
    repository = FakeStore(stored("tenant-a", 5))
    async with running_api(repository) as client:
        async with client.get("/executions?limit=2", headers=bearer("tenant-a")) as response:
            after = (await response.json())["metadata"]["after"]
        assert after is not None
        cases = [
            (f"/executions?limit=2&after={after}", "tenant-b", "another tenant"),
            (f"/executions?limit=2&status=pending&after={after}", "tenant-a", "another filter"),
            (f"/executions?limit=2&after={after[:-2]}xy", "tenant-a", "signature"),
        ]
        for path, tenant, words in cases:
            async with client.get(path, headers=bearer(tenant)) as response:
                assert response.status == 400, path
                assert_error(await response.json(), "invalid_cursor", words)


# Headers are made when the test runs: a token made at collection could expire before it does.
@pytest.mark.parametrize(
    ("make_headers", "words"),
    [
        (lambda: None, "missing Authorization header"),
        (lambda: {"Authorization": "Basic eDp5"}, "malformed Authorization header"),
        (lambda: bearer(expires_in=-3600), "expired"),
        (lambda: bearer(key="a-different-secret-of-32-bytes-at-least"), "signature"),
        (lambda: bearer(None), "no 'tenant_id' claim"),
    ],
)
async def test_bad_tokens_are_401(make_headers: Callable[[], dict[str, str] | None], words: str) -> None:
    repository = FakeStore(stored("tenant-a", 2))
    status, body, response = await get(repository, "/executions?status=bogus", make_headers())
    assert status == 401
    assert_error(body, "unauthorized", words)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert repository.queries == []


async def test_two_authorization_headers_are_401() -> None:
    headers = [("Authorization", f"Bearer {token('tenant-a')}")] * 2
    async with (
        running_api(FakeStore()) as client,
        client.get("/executions", headers=headers) as response,
    ):
        assert response.status == 401
        assert_error(await response.json(), "unauthorized", "more than one")


@pytest.mark.parametrize(
    ("query", "code", "words"),
    [
        ("tenant_id=tenant-b", "unknown_parameter", "'tenant_id'"),
        ("status=done", "invalid_status", "'done'"),
        ("limit=0", "invalid_limit", "1 to 100"),
        ("limit=101", "invalid_limit", "1 to 100"),
        ("plan_item_slug=a%23b", "invalid_plan_item_slug", "'#'"),
        ("plan_item_slug=a%0Ab", "invalid_plan_item_slug", "control characters"),
        ("limit=5&limit=6", "repeated_parameter", "'limit'"),
        ("after=garbage", "invalid_cursor", "malformed"),
        ("after=", "invalid_cursor", "must not be empty"),
    ],
)
async def test_bad_parameters_are_400_naming_the_problem(query: str, code: str, words: str) -> None:
    repository = FakeStore(stored("tenant-a", 2))
    status, body, _ = await get(repository, f"/executions?{query}", bearer("tenant-a"))
    assert status == 400
    assert_error(body, code, words)
    assert repository.queries == []


async def test_unavailable_repository_is_503() -> None:
    repository = FakeStore()
    repository.available = False
    status, body, response = await get(repository, "/executions", bearer())
    assert status == 503
    assert_error(body, "service_unavailable", "retry later")
    assert response.headers["Retry-After"] == "1"


class BrokenRepository(FakeStore):
    def __init__(self, result: Any) -> None:
        super().__init__()
        self.result = result

    async def list(self, query: ExecutionQuery) -> Any:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


async def test_unexpected_error_is_a_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    repository = BrokenRepository(KeyError("secret internals"))
    with caplog.at_level(logging.ERROR, logger="execution_stream.api"):
        status, body, _ = await get(repository, "/executions", bearer("tenant-a"))
    assert status == 500
    assert_error(body, "internal_error", "logged")
    assert "secret internals" not in json.dumps(body)
    errors = [r for r in caplog.records if r.name == "execution_stream.api"]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    line = json.loads(errors[0].getMessage())
    assert line["event"] == "unhandled_error"
    assert line["tenant_id"] == "tenant-a"
    assert "secret internals" in line["error"]


async def test_another_tenants_item_from_below_is_never_shown() -> None:
    page = await FakeStore(stored("tenant-b", 1)).list(ExecutionQuery("tenant-b"))
    status, body, _ = await get(BrokenRepository(page), "/executions", bearer("tenant-a"))
    assert status == 500
    assert "tenant-b" not in json.dumps(body)


async def test_healthz_is_up_even_when_dynamodb_is_down() -> None:
    repository = FakeStore()
    repository.available = False
    assert (await get(repository, "/healthz"))[:2] == (200, {"status": "ok"})


async def test_readyz_follows_dynamodb(caplog: pytest.LogCaptureFixture) -> None:
    repository = FakeStore()
    assert (await get(repository, "/readyz"))[:2] == (200, {"status": "ok"})
    repository.available = False
    with caplog.at_level(logging.WARNING, logger="execution_stream.api"):
        status, body, _ = await get(repository, "/readyz")
    assert status == 503
    assert_error(body, "not_ready", "DynamoDB is not reachable")
    assert "fake DynamoDB is down" not in json.dumps(body)  # internals go to the log only
    assert "fake DynamoDB is down" in caplog.text


class HangingRepository(FakeStore):
    async def ping(self) -> None:
        await asyncio.sleep(3600)


async def test_readyz_does_not_hang_on_a_silent_dynamodb(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(handlers, "READINESS_TIMEOUT_SECONDS", 0.05)
    with caplog.at_level(logging.WARNING, logger="execution_stream.api"):
        status, body, _ = await get(HangingRepository(), "/readyz")
    assert status == 503
    assert_error(body, "not_ready", "DynamoDB is not reachable")
    assert "no answer within 0.05s" in caplog.text


async def test_unknown_path_and_method_are_json_errors() -> None:
    async with running_api(FakeStore()) as client:
        async with client.get("/nope") as response:
            assert response.status == 404
            assert_error(await response.json(), "not_found", "GET /nope")
        async with client.post("/executions", headers=bearer()) as response:
            assert response.status == 405
            assert_error(await response.json(), "method_not_allowed", "POST")
            assert "GET" in response.headers["Allow"]


async def test_openapi_document_is_served() -> None:
    status, body, response = await get(FakeStore(), "/openapi.json")
    assert status == 200
    assert response.content_type == "application/json"
    assert body == openapi_document()


async def test_access_log_is_one_json_line_without_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret_token = token("tenant-a")
    repository = FakeStore(stored("tenant-a", 1))
    with caplog.at_level(logging.INFO):
        async with running_api(repository) as client:
            headers = {"Authorization": f"Bearer {secret_token}"}
            async with client.get("/executions?limit=5", headers=headers) as response:
                assert response.status == 200
            async with client.get("/healthz") as response:
                assert response.status == 200
            await asyncio.sleep(0.05)  # the access log is written after the response
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith("api.access")]
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("GET", "/executions", 200),
        ("GET", "/healthz", 200),
    ]
    assert lines[0]["tenant_id"] == "tenant-a"
    assert "tenant_id" not in lines[1]
    assert all(isinstance(line["latency_ms"], float) for line in lines)
    assert secret_token not in caplog.text
    assert secret_token.split(".")[2] not in caplog.text
