"""CORS for a web view on another origin: preflights, the headers of every answer, and none for an
origin not on the list (whose requests are still authenticated as usual)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from execution_stream.api.cors import CorsPolicy
from tests.support.api import bearer, hs256_settings, running_api
from tests.support.factories import execution
from tests.support.fake_store import FakeStore

WEB_VIEW = "https://app.example.com"
ELSEWHERE = "https://evil.example.net"
PENDING = execution("tenant-a", 1)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    settings = hs256_settings(api_cors_origins=[WEB_VIEW])
    async with running_api(FakeStore([PENDING]), settings) as session:
        yield session


def preflight_headers(method: str = "GET", origin: str = WEB_VIEW, **extra: str) -> dict[str, str]:
    headers = {"Origin": origin, "Access-Control-Request-Method": method}
    return headers | {"Access-Control-Request-Headers": "authorization"} | extra


def vary_of(response: aiohttp.ClientResponse) -> set[str]:
    return {v.strip().lower() for v in response.headers.get("Vary", "").split(",") if v.strip()}


async def ask(client: aiohttp.ClientSession, method: str, path: str, **headers: str) -> tuple[Any, bytes]:
    async with client.request(method, path, headers=headers) as response:
        return response, await response.read()


def test_a_listed_origin_is_echoed_with_credentials_and_star_never_is() -> None:
    policy = CorsPolicy.of([WEB_VIEW, "*"])

    listed = policy.response_headers(WEB_VIEW)
    other = policy.response_headers(ELSEWHERE)

    assert listed["Access-Control-Allow-Origin"] == WEB_VIEW
    assert listed["Access-Control-Allow-Credentials"] == "true"
    assert other["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in other


def test_an_origin_not_on_the_list_gets_nothing() -> None:
    policy = CorsPolicy.of([WEB_VIEW])
    assert policy.response_headers(ELSEWHERE) == {}
    assert policy.response_headers(None) == {}
    assert policy.response_headers(WEB_VIEW + ":443") == {}, "an origin matches exactly"


async def test_a_preflight_of_the_listing_names_get_and_the_authorization_header(
    client: aiohttp.ClientSession,
) -> None:
    response, body = await ask(client, "OPTIONS", "/executions", **preflight_headers())

    assert (response.status, body) == (204, b"")
    headers = response.headers
    assert headers["Access-Control-Allow-Origin"] == WEB_VIEW
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert set(headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert "Authorization" in headers["Access-Control-Allow-Headers"].split(", ")
    assert int(headers["Access-Control-Max-Age"]) > 0
    assert {"origin", "access-control-request-method"} <= vary_of(response)


async def test_a_preflight_of_a_cancel_names_post(client: aiohttp.ClientSession) -> None:
    path = f"/executions/{PENDING.execution_id}/cancel"
    response, _ = await ask(client, "OPTIONS", path, **preflight_headers("POST"))

    assert response.status == 204
    assert response.headers["Access-Control-Allow-Methods"] == "OPTIONS, POST"


async def test_a_preflight_from_an_origin_not_listed_is_refused_without_cors_headers(
    client: aiohttp.ClientSession,
) -> None:
    response, body = await ask(client, "OPTIONS", "/executions", **preflight_headers(origin=ELSEWHERE))

    assert response.status == 403
    assert b"cors_origin_not_allowed" in body
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]
    assert "origin" in vary_of(response)


async def test_a_preflight_of_a_method_or_path_not_served_gets_the_405_or_404_it_would(
    client: aiohttp.ClientSession,
) -> None:
    wrong_method, _ = await ask(client, "OPTIONS", "/executions", **preflight_headers("DELETE"))
    no_path, body = await ask(client, "OPTIONS", "/nowhere", **preflight_headers())

    assert wrong_method.status == 405
    assert wrong_method.headers["Allow"] == "GET,HEAD"
    assert "Access-Control-Allow-Methods" not in wrong_method.headers
    assert no_path.status == 404
    assert b"no such endpoint: GET /nowhere" in body


async def test_a_listed_origin_reads_the_answer_and_the_headers_a_client_needs(
    client: aiohttp.ClientSession,
) -> None:
    async with client.get("/executions", headers={"Origin": WEB_VIEW, **bearer("tenant-a")}) as response:
        body = await response.json()

    assert response.status == 200
    assert [item["execution_id"] for item in body["data"]] == [PENDING.execution_id]
    assert response.headers["Access-Control-Allow-Origin"] == WEB_VIEW
    exposed = response.headers["Access-Control-Expose-Headers"].split(", ")
    assert {"Retry-After", "WWW-Authenticate"} <= set(exposed)
    assert "origin" in vary_of(response)


async def test_a_401_carries_the_cors_headers_so_the_page_can_show_its_message(
    client: aiohttp.ClientSession,
) -> None:
    headers = {"Origin": WEB_VIEW, "Authorization": "Bearer not-a-jwt"}
    async with client.get("/executions", headers=headers) as response:
        body = await response.json()

    assert response.status == 401
    assert body["error"]["code"] == "unauthorized"
    assert response.headers["Access-Control-Allow-Origin"] == WEB_VIEW


async def test_an_origin_not_listed_is_authenticated_as_usual_and_gets_no_cors_headers(
    client: aiohttp.ClientSession,
) -> None:
    allowed, _ = await ask(client, "GET", "/executions", Origin=ELSEWHERE, **bearer("tenant-a"))
    refused, _ = await ask(client, "GET", "/executions", Origin=ELSEWHERE)

    assert (allowed.status, refused.status) == (200, 401)
    for response in (allowed, refused):
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "origin" in vary_of(response)


async def test_star_answers_any_origin_with_star_and_no_credentials() -> None:
    settings = hs256_settings(api_cors_origins=["*"])
    async with running_api(FakeStore([PENDING]), settings) as client:
        preflight, _ = await ask(client, "OPTIONS", "/executions", **preflight_headers(origin=ELSEWHERE))
        answer, _ = await ask(client, "GET", "/executions", Origin=ELSEWHERE, **bearer("tenant-a"))

    for response in (preflight, answer):
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in response.headers
    assert (preflight.status, answer.status) == (204, 200)


async def test_without_origins_the_api_sends_no_cors_headers_and_refuses_options() -> None:
    async with running_api(FakeStore([PENDING]), hs256_settings()) as client:
        preflight, _ = await ask(client, "OPTIONS", "/executions", **preflight_headers())
        answer, _ = await ask(client, "GET", "/executions", Origin=WEB_VIEW, **bearer("tenant-a"))

    assert (preflight.status, answer.status) == (405, 200)
    for response in (preflight, answer):
        assert not [name for name in response.headers if name.lower().startswith("access-control-")]
        assert "Vary" not in response.headers


async def test_the_openapi_document_is_the_same_with_cors_and_the_page_on() -> None:
    async with running_api(FakeStore(), hs256_settings()) as plain:
        _, without = await ask(plain, "GET", "/openapi.json")
    async with running_api(FakeStore(), hs256_settings(api_cors_origins=[WEB_VIEW], api_ui=True)) as rich:
        _, with_both = await ask(rich, "GET", "/openapi.json", Origin=WEB_VIEW)

    assert with_both == without
