"""The web view's side, in a real headless Chromium: the executions page, served from another origin
(CORS, preflight included) and by the API itself at /ui/, against the worker and the API as processes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from execution_stream.domain.models import Execution
from tests.support.api import bearer, token
from tests.support.api_process import running_api_process
from tests.support.browser import ExecutionsPage, headless_chromium, page_on_its_own_origin
from tests.support.ledger import asset_record, report, stored, trigger_record
from tests.support.pipeline import Pipeline, produce

A, B = "tenant-a", "tenant-b"
UNAUTHORIZED = 401


@pytest.fixture
def page(tmp_path: Path) -> Iterator[ExecutionsPage]:
    with headless_chromium(tmp_path) as driver:
        yield ExecutionsPage(driver)


async def listing(url: str, query: str = "", tenant: str = A) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/executions{query}", headers=bearer(tenant)) as response,
    ):
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
        return body


def ids_and_statuses(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(row["execution_id"], row["status"].split(" ")[0]) for row in rows]


async def shown(page: ExecutionsPage, expected: dict[str, Any], what: str) -> list[dict[str, Any]]:
    """The page's rows once they are the API's answer `expected`: the same executions, in the same
    order, with the same statuses."""
    wanted = ids_and_statuses(expected["data"])

    def rows_as_expected(p: ExecutionsPage) -> list[dict[str, Any]] | None:
        rows = p.rows()
        return rows if rows and ids_and_statuses(rows) == wanted else None

    return await asyncio.to_thread(page.wait_until, rows_as_expected, what)


def access_lines(log: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "access"]


async def started_with_capacity_one(pipeline: Pipeline, triggers: list[tuple[str, bytes]]) -> None:
    settings = pipeline.settings
    await produce(settings, settings.topic_assets, [asset_record(t, f"asset-{t}") for t in (A, B)])
    pipeline.start_worker(default_concurrency_limit=1)
    await produce(settings, settings.topic_trigger_execution, triggers)


async def _queue_known(url: str, waiting: int) -> dict[str, Any]:
    """The listing once the worker has published the queue the pending ones wait in."""
    for _ in range(300):
        body = await listing(url)
        positions = [i.get("queue_position") for i in body["data"] if i["status"] == "pending"]
        if len(positions) == waiting and None not in positions:
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"the API never gave the {waiting} queue positions: {body['data']}")


async def test_the_page_on_another_origin_lists_the_tenants_executions_as_the_api_does(
    pipeline: Pipeline, page: ExecutionsPage, tmp_path: Path
) -> None:
    runners = ["github_actions", *["jit_runner"] * 5]
    triggers = [trigger_record(A, n, runner) for n, runner in enumerate(runners)]
    await started_with_capacity_one(pipeline, [*triggers, trigger_record(B, 0), trigger_record(B, 1)])
    found = await stored(
        pipeline, A, 6, lambda e: sum(x.status.value == "dispatched" for x in e.values()) == 2
    )
    github_run = found[0]
    assert github_run.html_url is not None
    tenant_b = await stored(pipeline, B, 2, lambda e: True)

    log = tmp_path / "api.log"
    with page_on_its_own_origin() as origin:
        settings = pipeline.settings.model_copy(update={"api_cors_origins": [origin]})
        async with running_api_process(settings, log) as url:
            expected = await _queue_known(url, waiting=4)
            await asyncio.to_thread(page.open, f"{origin}/index.html?api={url}#token={token(A)}")
            rows = await shown(page, expected, "tenant-a's executions in the API's order")
            screenshot = await asyncio.to_thread(page.screenshot, "web-view-executions.png")

    by_id = {row["execution_id"]: row for row in rows}
    assert by_id[github_run.execution_id]["run"] == github_run.html_url
    for item in expected["data"]:
        if item["status"] == "pending":
            assert item["waiting_reason"] == "capacity"
            assert f"queue position {item['queue_position']}" in by_id[item["execution_id"]]["waiting"]
        assert by_id[item["execution_id"]]["status"].startswith(item["status"])
    assert not set(by_id) & {e.execution_id for e in tenant_b.values()}
    assert screenshot.stat().st_size > 0
    preflights = [line for line in access_lines(log) if line["method"] == "OPTIONS"]
    assert preflights, "the browser asked the API before sending the token"
    assert {(line["path"], line["status"]) for line in preflights} == {("/executions", 204)}


async def test_a_wrong_token_shows_the_apis_401_message_and_an_origin_not_listed_is_refused(
    pipeline: Pipeline, page: ExecutionsPage, tmp_path: Path
) -> None:
    await started_with_capacity_one(pipeline, [trigger_record(A, 0, "jit_runner")])
    await stored(pipeline, A, 1, lambda e: e[0].status.value == "dispatched")
    wrong = token(A, key="another-secret-of-at-least-32-bytes-long")
    with page_on_its_own_origin() as origin:
        settings = pipeline.settings.model_copy(update={"api_cors_origins": [origin]})
        async with running_api_process(settings, tmp_path / "api.log") as url:
            async with aiohttp.ClientSession() as session:
                headers = {"Authorization": f"Bearer {wrong}"}
                async with session.get(f"{url}/executions", headers=headers) as response:
                    assert response.status == UNAUTHORIZED
                    message = (await response.json())["error"]["message"]
            await asyncio.to_thread(page.open, f"{origin}/index.html?api={url}#token={wrong}")
            await asyncio.to_thread(page.wait_until, lambda p: p.error() == f"401: {message}", "the 401")
            assert page.rows() == []

            await asyncio.to_thread(page.show, None, token(A))
            await asyncio.to_thread(page.wait_until, lambda p: len(p.rows()) == 1 and not p.error(), "a row")

        elsewhere = pipeline.settings.model_copy(update={"api_cors_origins": ["https://app.example.com"]})
        async with running_api_process(elsewhere, tmp_path / "api-elsewhere.log") as url:
            await asyncio.to_thread(page.open, f"{origin}/index.html?api={url}#token={token(A)}")
            refused = await asyncio.to_thread(
                page.wait_until, lambda p: "could not reach the API" in p.error() and p.error(), "a refusal"
            )
    assert url in refused
    assert page.rows() == []


async def test_filters_and_paging_on_the_page_the_api_serves_follow_the_apis_cursors(
    pipeline: Pipeline, page: ExecutionsPage, tmp_path: Path
) -> None:
    triggers = [
        trigger_record(A, n, "jit_runner", plan_item_slug="item-sast" if n % 3 else "item-secrets")
        for n in range(13)
    ]
    settings = pipeline.settings
    await produce(settings, settings.topic_assets, [asset_record(A, f"asset-{A}")])
    pipeline.start_worker(default_concurrency_limit=20)
    await produce(settings, settings.topic_trigger_execution, triggers)
    found = await stored(pipeline, A, 13, lambda e: all(x.status.value == "dispatched" for x in e.values()))
    await _finish(pipeline, found, completed=[1, 3, 7], failed=[2])

    ui = settings.model_copy(update={"api_ui": True})
    async with running_api_process(ui, tmp_path / "api.log") as url:
        await asyncio.to_thread(page.open, f"{url}/ui/#token={token(A)}")
        first = await listing(url, "?limit=20")
        await shown(page, first, "all 13, newest first")
        assert "token" not in page.driver.current_url, "the token leaves the address bar"

        await asyncio.to_thread(page.page_size, 10)
        page_one = await listing(url, "?limit=10")
        await shown(page, page_one, "the first 10")
        assert not page.enabled("previous")
        page.click("next")
        page_two = await listing(url, f"?limit=10&after={page_one['metadata']['after']}")
        await shown(page, page_two, "the last 3")
        assert (len(page_two["data"]), page.enabled("next"), page.text_of("page")) == (3, False, "page 2")
        page.click("previous")
        await shown(page, page_one, "the first 10 again")

        await asyncio.to_thread(page.filter_status, "completed")
        completed = await shown(page, await listing(url, "?limit=10&status=completed"), "3 completed")
        await asyncio.to_thread(page.filter_plan_item, "item-secrets")
        both = await listing(url, "?limit=10&status=completed&plan_item_slug=item-secrets")
        secrets = await shown(page, both, "completed secrets")
        await asyncio.to_thread(page.filter_status, "")
        everything = await listing(url, "?limit=10&plan_item_slug=item-secrets")
        await shown(page, everything, "all secrets")

    assert len(completed) == 3
    assert {row["status"] for row in completed} == {"completed"}
    assert [row["plan_item"] for row in secrets] == ["item-secrets"] * len(both["data"]) != []
    assert len(everything["data"]) == 5


async def _finish(
    pipeline: Pipeline, found: dict[int, Execution], completed: list[int], failed: list[int]
) -> None:
    settings = pipeline.settings
    reports = [report(found[n], "completed") for n in completed] + [
        report(found[n], "failed", error="exit 2") for n in failed
    ]
    await produce(settings, settings.topic_execution_status, reports)
    ended = {*completed, *failed}
    await stored(pipeline, A, len(found), lambda e: all(e[n].status.value != "dispatched" for n in ended))


async def test_the_page_refreshes_by_itself_as_executions_change(
    pipeline: Pipeline, page: ExecutionsPage, tmp_path: Path
) -> None:
    settings = pipeline.settings
    await started_with_capacity_one(pipeline, [trigger_record(A, n, "jit_runner") for n in range(2)])
    found = await stored(pipeline, A, 2, lambda e: e[0].status.value == "dispatched")
    async with running_api_process(settings.model_copy(update={"api_ui": True}), tmp_path / "api.log") as url:
        await asyncio.to_thread(page.open, f"{url}/ui/#token={token(A)}")
        await shown(page, await listing(url), "two executions")

        # Nothing is clicked from here on: the page reads the API again every few seconds.
        await produce(settings, settings.topic_execution_status, [report(found[0], "completed")])
        await produce(settings, settings.topic_trigger_execution, [trigger_record(A, 2, "jit_runner")])
        await stored(
            pipeline, A, 3, lambda e: e[0].status.value == "completed" and e[1].status.value == "dispatched"
        )
        rows = await shown(page, await listing(url), "the first completed, the second dispatched, a third")
    assert [row["status"] for row in rows] == ["pending", "dispatched", "completed"]
