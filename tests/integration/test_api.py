"""GET /executions against the real DynamoDB endpoint, data written through the repository."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import aiohttp
import pytest

from execution_stream.adapters import dynamodb_keys as keys
from execution_stream.adapters.dynamodb_repository import open_repository
from execution_stream.api.cursors import CursorCodec
from execution_stream.api.validation import ExecutionFilter
from execution_stream.dev_stack.processes import free_loopback_port
from execution_stream.domain.models import ExecutionStatus
from tests.support.api import CURSOR_SECRET, bearer, get_json, listed, read_all, running_api
from tests.support.dataset import API_PLAN_ITEMS, API_TENANTS, PATH_TO, ApiDataset

pytestmark = pytest.mark.dynamodb_engines

S = ExecutionStatus
A, B = API_TENANTS
FILTERS = list(itertools.product([None, *PATH_TO], [None, *API_PLAN_ITEMS]))


def filter_query(status: S | None, plan_item: str | None) -> str:
    query = f"&status={status.value}" if status else ""
    return query + (f"&plan_item_slug={plan_item}" if plan_item else "")


@pytest.mark.parametrize(("status", "plan_item"), FILTERS)
async def test_each_filter_returns_exactly_the_tenants_matching_executions_newest_first(
    api_client: aiohttp.ClientSession,
    api_dataset: ApiDataset,
    status: S | None,
    plan_item: str | None,
) -> None:
    for tenant_id in API_TENANTS:
        expected = [listed(e) for e in api_dataset.expected(tenant_id, status, plan_item)]
        pages = await read_all(api_client, tenant_id, filter_query(status, plan_item), limit=100)
        items = [item for page in pages for item in page]
        assert expected, "every filter matches some executions of each tenant"
        assert items == expected


async def test_an_unknown_plan_item_is_an_empty_page(api_client: aiohttp.ClientSession) -> None:
    status, body = await get_json(api_client, "/executions?plan_item_slug=item-none", bearer(A))
    assert (status, body) == (200, {"data": [], "metadata": {"count": 0, "after": None}})


async def test_paging_by_7_over_250_returns_every_item_once_in_order(
    api_client: aiohttp.ClientSession, api_dataset: ApiDataset
) -> None:
    expected = [e.execution_id for e in api_dataset.expected(A)]
    assert len(expected) == 250
    pages = await read_all(api_client, A, "", limit=7)
    ids = [item["execution_id"] for page in pages for item in page]
    assert ids == expected
    assert len(set(ids)) == 250
    assert [len(page) for page in pages] == [7] * 35 + [5]


async def test_a_page_that_ends_exactly_at_the_last_item_has_no_after(
    api_client: aiohttp.ClientSession, api_dataset: ApiDataset
) -> None:
    size = len(api_dataset.expected(A, S.RUNNING, "item-sca"))
    pages = await read_all(api_client, A, filter_query(S.RUNNING, "item-sca"), limit=size)
    assert [len(page) for page in pages] == [size]


async def test_paging_with_a_filter(api_client: aiohttp.ClientSession, api_dataset: ApiDataset) -> None:
    expected = [e.execution_id for e in api_dataset.expected(A, S.COMPLETED, None)]
    pages = await read_all(api_client, A, filter_query(S.COMPLETED, None), limit=4)
    assert [item["execution_id"] for page in pages for item in page] == expected


async def test_tenant_b_never_sees_tenant_a(
    api_client: aiohttp.ClientSession, api_dataset: ApiDataset
) -> None:
    a_ids = {e.execution_id for e in api_dataset.expected(A)}
    for status, plan_item in FILTERS:
        pages = await read_all(api_client, B, filter_query(status, plan_item), limit=100)
        items = [item for page in pages for item in page]
        assert {item["tenant_id"] for item in items} == {B}
        assert not a_ids & {item["execution_id"] for item in items}
        assert len(items) == len(api_dataset.expected(B, status, plan_item))


async def test_tenant_as_cursor_with_bs_token_is_400(api_client: aiohttp.ClientSession) -> None:
    for query in ("", "&status=pending", "&plan_item_slug=item-sca&status=completed"):
        status, body = await get_json(api_client, f"/executions?limit=2{query}", bearer(A))
        after = body["metadata"]["after"]
        assert status == 200
        assert after is not None
        status, body = await get_json(api_client, f"/executions?limit=2{query}&after={after}", bearer(B))
        assert status == 400
        assert body["error"]["code"] == "invalid_cursor"
        assert "another tenant" in body["error"]["message"]


async def test_a_tenant_id_in_the_query_is_refused(api_client: aiohttp.ClientSession) -> None:
    status, body = await get_json(api_client, f"/executions?tenant_id={A}", bearer(B))
    assert status == 400
    assert body["error"]["code"] == "unknown_parameter"
    assert "tenant_id" in body["error"]["message"]


def forged_cursor(tenant_id: str, start: dict[str, str]) -> str:
    """A cursor signed with the right key but a start key outside the caller's partition."""
    return CursorCodec(CURSOR_SECRET.encode()).encode(start, tenant_id, ExecutionFilter())


# Headers are made when the test runs: a token made at collection could expire before it does.
BAD_INPUTS: list[tuple[str, Callable[[], dict[str, str] | None], int, str, str]] = [
    ("/executions", lambda: None, 401, "unauthorized", "missing Authorization header"),
    ("/executions", lambda: {"Authorization": "Bearer x.y"}, 401, "unauthorized", "malformed"),
    ("/executions", lambda: bearer(A, expires_in=-600), 401, "unauthorized", "expired"),
    (
        "/executions",
        lambda: bearer(A, key="wrong-secret-wrong-secret-wrong-secret"),
        401,
        "unauthorized",
        "signature",
    ),
    ("/executions", lambda: bearer(None), 401, "unauthorized", "'tenant_id' claim"),
    ("/executions", lambda: bearer("a#b"), 401, "unauthorized", "not a valid tenant id"),
    ("/executions?status=done", lambda: bearer(A), 400, "invalid_status", "status 'done' is not one of"),
    ("/executions?status=", lambda: bearer(A), 400, "invalid_status", "status '' is not one of"),
    (
        "/executions?limit=0",
        lambda: bearer(A),
        400,
        "invalid_limit",
        "limit must be an integer from 1 to 100",
    ),
    ("/executions?limit=101", lambda: bearer(A), 400, "invalid_limit", "got '101'"),
    ("/executions?limit=ten", lambda: bearer(A), 400, "invalid_limit", "got 'ten'"),
    ("/executions?plan_item_slug=", lambda: bearer(A), 400, "invalid_plan_item_slug", "empty"),
    ("/executions?plan_item_slug=a%23b", lambda: bearer(A), 400, "invalid_plan_item_slug", "'#'"),
    ("/executions?plan_item_slug=" + "x" * 257, lambda: bearer(A), 400, "invalid_plan_item_slug", "256"),
    ("/executions?plan_item_slug=%01", lambda: bearer(A), 400, "invalid_plan_item_slug", "control"),
    ("/executions?offset=3", lambda: bearer(A), 400, "unknown_parameter", "'offset'"),
    ("/executions?status=pending&status=failed", lambda: bearer(A), 400, "repeated_parameter", "'status'"),
    ("/executions?after=", lambda: bearer(A), 400, "invalid_cursor", "must not be empty"),
    ("/executions?after=bm90LWEtY3Vyc29y", lambda: bearer(A), 400, "invalid_cursor", "malformed"),
    ("/executions?after=e30.AAAA", lambda: bearer(A), 400, "invalid_cursor", "signature does not match"),
    ("/nowhere", lambda: bearer(A), 404, "not_found", "/nowhere"),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
async def test_bad_input_is_its_4xx_with_a_message_naming_the_problem(
    api_client: aiohttp.ClientSession,
    case: tuple[str, Callable[[], dict[str, str] | None], int, str, str],
) -> None:
    path, make_headers, status, code, words = case
    got, body = await get_json(api_client, path, make_headers())
    assert (got, body["error"]["code"]) == (status, code), body
    assert words in body["error"]["message"]


async def test_a_signed_cursor_outside_the_partition_is_400_not_500(
    api_client: aiohttp.ClientSession,
) -> None:
    """Had the cursor key leaked, a forged start key still reaches neither DynamoDB nor tenant B."""
    starts = [
        {
            keys.PK: keys.partition_key(B),
            keys.SK: "x",
            "GSI1PK": keys.partition_key(B),
            "GSI1SK": "t",
        },
        {keys.PK: keys.partition_key(A), keys.SK: "x"},
        {
            "GSI1PK": keys.partition_key(A),
            "GSI1SK": "t",
            keys.PK: keys.partition_key(A),
            keys.SK: "",
        },
    ]
    for start in starts:
        status, body = await get_json(api_client, f"/executions?after={forged_cursor(A, start)}", bearer(A))
        assert status == 400, body
        assert body["error"]["code"] == "invalid_cursor"


async def test_readyz_against_dynamodb(api_client: aiohttp.ClientSession, api_dataset: ApiDataset) -> None:
    assert await get_json(api_client, "/readyz", None) == (200, {"status": "ok"})
    missing = api_dataset.settings.model_copy(update={"dynamodb_table": "no-such-table"})
    async with open_repository(missing) as repository, running_api(repository, missing) as client:
        status, body = await get_json(client, "/readyz", None)
        assert status == 503
        assert body["error"]["code"] == "not_ready"
        assert (await get_json(client, "/healthz", None)) == (200, {"status": "ok"})


async def test_dynamodb_gone_is_503_not_500(api_dataset: ApiDataset) -> None:
    closed = api_dataset.settings.model_copy(
        update={
            "dynamodb_endpoint_url": f"http://127.0.0.1:{free_loopback_port()}",
            "dynamodb_max_attempts": 1,
        }
    )
    async with (
        open_repository(closed) as repository,
        running_api(repository, closed) as client,
    ):
        for path in ("/executions", f"/executions/{'0' * 32}"):
            status, body = await get_json(client, path, bearer(A))
            assert status == 503, path
            assert body["error"]["code"] == "service_unavailable"
        status, body = await get_json(client, "/readyz", None)
        assert status == 503


async def test_a_web_view_on_a_listed_origin_is_answered_its_preflight_and_its_page(
    api_dataset: ApiDataset,
) -> None:
    web_view = "https://app.example.com"
    settings = api_dataset.settings.model_copy(update={"api_cors_origins": [web_view]})
    preflight = {"Origin": web_view, "Access-Control-Request-Method": "GET"}
    async with open_repository(settings) as repository, running_api(repository, settings) as client:
        async with client.options("/executions", headers=preflight) as asked:
            assert asked.status == 204
            assert asked.headers["Access-Control-Allow-Origin"] == web_view
            assert "Authorization" in asked.headers["Access-Control-Allow-Headers"]
        async with client.get("/executions?limit=5", headers={"Origin": web_view, **bearer(A)}) as page:
            body = await page.json()
            assert page.headers["Access-Control-Allow-Origin"] == web_view
        async with client.get(
            "/executions?limit=5", headers={"Origin": "https://other.example", **bearer(A)}
        ) as other:
            assert other.status == 200
            assert "Access-Control-Allow-Origin" not in other.headers

    assert [item["execution_id"] for item in body["data"]] == [
        e.execution_id for e in api_dataset.expected(A)
    ][:5]
