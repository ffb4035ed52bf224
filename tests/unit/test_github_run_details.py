"""The dispatcher reading GitHub's answers to `return_run_details` that the stand-in does not give: a
GitHub that ignores the parameter (204), one whose 200 names no run, and a 400 refusing it. A scripted
GitHub on loopback answers each dispatch as the test says."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from execution_stream.adapters.github_dispatcher import GithubActionsDispatcher
from execution_stream.dev_stack.local_github import AppKey, generate_app_key
from execution_stream.domain.dispatch import DispatchRefusedError, RunDetails
from execution_stream.domain.enrichment import GithubWorkflowTarget

TARGET = GithubWorkflowTarget(
    installation_id="7", owner="o", repo="r", workflow_file="w.yml", ref="main", inputs={"execution_id": "e1"}
)
LOGGER = "execution_stream.adapters.github_dispatcher"


@dataclass
class ScriptedGithub:
    """Answers dispatches with `answers` in turn (status, body), the last one for ever after."""

    answers: list[tuple[int, Any]]
    bodies: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def token(self, request: web.Request) -> web.Response:
        return web.json_response({"token": "ghs_t", "expires_at": "2999-01-01T00:00:00Z"}, status=201)

    async def dispatch(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        status, body = self.answers[min(len(self.bodies), len(self.answers)) - 1]
        if body is None:
            return web.Response(status=status)
        text = body if isinstance(body, str) else json.dumps(body)
        return web.Response(status=status, text=text, content_type="application/json")


@asynccontextmanager
async def scripted_github(*answers: tuple[int, Any]) -> AsyncIterator[ScriptedGithub]:
    github = ScriptedGithub(list(answers))
    app = web.Application()
    app.router.add_post("/app/installations/{installation}/access_tokens", github.token)
    app.router.add_post("/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches", github.dispatch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        await web.SockSite(runner, sock).start()
        github.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        yield github
    finally:
        await runner.cleanup()
        sock.close()


@pytest.fixture(scope="module")
def keys() -> AppKey:
    return generate_app_key()


async def dispatch_to(keys: AppKey, *answers: tuple[int, Any]) -> tuple[RunDetails | None, ScriptedGithub]:
    async with (
        scripted_github(*answers) as github,
        GithubActionsDispatcher(github.url, "1", keys.private_pem, max_attempts=2) as dispatcher,
    ):
        return await dispatcher.dispatch(TARGET), github


async def test_a_dispatch_asks_for_its_run_and_a_204_names_none(keys: AppKey) -> None:
    details, github = await dispatch_to(keys, (204, None))

    assert details is None
    assert github.bodies == [{"ref": "main", "inputs": {"execution_id": "e1"}, "return_run_details": True}]


async def test_a_200_with_only_the_run_id_is_enough(keys: AppKey) -> None:
    details, _ = await dispatch_to(keys, (200, {"workflow_run_id": 123, "html_url": 5}))

    assert details == RunDetails(workflow_run_id=123, html_url=None, run_url=None)


@pytest.mark.parametrize(
    "body",
    [{}, {"workflow_run_id": "123"}, {"workflow_run_id": True}, {"workflow_run_id": None}, "not json", [1]],
    ids=["no-id", "id-as-text", "id-as-bool", "id-null", "not-json", "not-object"],
)
async def test_a_200_naming_no_run_is_a_dispatch_without_details(
    keys: AppKey, body: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        details, github = await dispatch_to(keys, (200, body))

    assert details is None
    assert len(github.bodies) == 1  # the workflow started: not sent again
    assert [r.getMessage() for r in caplog.records] == ["GitHub's dispatch answer names no workflow run"]


async def test_a_400_naming_return_run_details_is_sent_again_without_it(keys: AppKey) -> None:
    refusal = {"message": "Invalid request.\n\n'return_run_details' is not a permitted key."}

    details, github = await dispatch_to(keys, (400, refusal), (204, None))

    assert details is None
    assert ["return_run_details" in body for body in github.bodies] == [True, False]


async def test_a_422_about_something_else_is_refused_without_a_fallback(keys: AppKey) -> None:
    refusal = {"message": 'Unexpected inputs provided: ["x"]'}

    async with (
        scripted_github((422, refusal), (204, None)) as github,
        GithubActionsDispatcher(github.url, "1", keys.private_pem) as dispatcher,
    ):
        with pytest.raises(DispatchRefusedError) as refused:
            await dispatcher.dispatch(TARGET)
        assert dispatcher.supports_run_details()

    assert refused.value.status == 422
    assert "Unexpected inputs" in refused.value.reason
    assert len(github.bodies) == 1
