"""The GitHub dispatcher against the GitHub stand-in on loopback, and the stand-in's own checks."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from execution_stream.adapters.github_dispatcher import GithubActionsDispatcher
from execution_stream.dev_stack.github_standin import GithubStandin, running_github_standin
from execution_stream.dev_stack.local_github import AppKey, generate_app_key
from execution_stream.domain.dispatch import (
    CancelOutcome,
    DispatchRefusedError,
    DispatchUnavailableError,
    GithubRun,
    RunDetails,
)
from execution_stream.domain.enrichment import GithubWorkflowTarget, github_workflow_target
from execution_stream.domain.executions import build_execution
from tests.support.factories import BASE_TIME, asset, trigger_event
from tests.support.paths import project_root

APP_ID = "161076"
INSTALLATION_ID = "24915845"
OWNER = "jitsecurity"
MAX_ATTEMPTS = 4
REQUEST_TIMEOUT = 0.5
TARGET = GithubWorkflowTarget(
    installation_id=INSTALLATION_ID,
    owner=OWNER,
    repo="execution-service",
    workflow_file="workflow-sast.yml",
    ref="main",
    inputs={"tenant_id": "tenant-a", "execution_id": "e1"},
)
DISPATCH_PATH = "/repos/jitsecurity/execution-service/actions/workflows/workflow-sast.yml/dispatches"
TOKEN_PATH = f"/app/installations/{INSTALLATION_ID}/access_tokens"
# A dispatch asks for its run's details, which GitHub gives with a 200 (without them, 204).
DISPATCHED = 200


@pytest.fixture(scope="module")
def keys() -> AppKey:
    return generate_app_key()


@pytest.fixture(scope="module")
def other_keys() -> AppKey:
    """Keys of no app GitHub knows."""
    return generate_app_key()


@pytest.fixture
async def standin(keys: AppKey) -> AsyncIterator[GithubStandin]:
    async with running_github_standin(
        APP_ID, keys.public_pem, installations={INSTALLATION_ID: OWNER}
    ) as running:
        yield running


def dispatcher_for(url: str, private_pem: str, **knobs: Any) -> GithubActionsDispatcher:
    settings: dict[str, Any] = {
        "max_attempts": MAX_ATTEMPTS,
        "base_backoff_seconds": 0.01,
        "max_backoff_seconds": 0.05,
        "request_timeout_seconds": REQUEST_TIMEOUT,
        **knobs,
    }
    return GithubActionsDispatcher(url, APP_ID, private_pem, **settings)


@pytest.fixture
async def dispatcher(standin: GithubStandin, keys: AppKey) -> AsyncIterator[GithubActionsDispatcher]:
    async with dispatcher_for(standin.url, keys.private_pem) as running:
        yield running


def calls(standin: GithubStandin, path: str) -> list[int]:
    """The statuses the stand-in answered on `path`, in order."""
    return [request.status for request in standin.requests if request.path == path]


async def test_a_dispatch_arrives_with_the_apps_auth_the_ref_and_the_inputs(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    attributes = {"owner": OWNER, "original_repository": "execution-service", "installation_id": 24915845}
    execution = build_execution(trigger_event(additional_attributes=attributes), asset(), BASE_TIME)
    target = github_workflow_target(execution)

    await dispatcher.dispatch(target)

    [dispatch] = standin.dispatches
    assert (dispatch.installation_id, dispatch.owner, dispatch.repo) == (INSTALLATION_ID, OWNER, target.repo)
    assert (dispatch.workflow, dispatch.ref) == ("workflow-sast.yml", "main")
    assert dispatch.inputs == target.inputs
    assert dispatch.inputs["execution_id"] == execution.execution_id
    assert dispatch.accept == "application/vnd.github+json"
    assert dispatch.api_version == "2022-11-28"
    assert calls(standin, TOKEN_PATH) == [201]
    assert calls(standin, DISPATCH_PATH) == [DISPATCHED]


async def test_a_token_is_reused_until_a_minute_before_it_expires(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    await dispatcher.dispatch(TARGET)
    await dispatcher.dispatch(replace(TARGET, inputs={"execution_id": "e2"}))

    assert len(standin.issued_tokens) == 1
    assert [d.inputs["execution_id"] for d in standin.dispatches] == ["e1", "e2"]


async def test_a_token_expiring_within_a_minute_is_renewed(keys: AppKey) -> None:
    async with (
        running_github_standin(APP_ID, keys.public_pem, token_lifetime_seconds=30) as short_lived,
        dispatcher_for(short_lived.url, keys.private_pem) as dispatcher,
    ):
        await dispatcher.dispatch(TARGET)
        await dispatcher.dispatch(TARGET)

        assert len(short_lived.issued_tokens) == 2
        assert len(short_lived.dispatches) == 2


async def test_concurrent_dispatches_share_one_token_request(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    targets = [replace(TARGET, inputs={"execution_id": f"e{n}"}) for n in range(8)]

    await asyncio.gather(*(dispatcher.dispatch(target) for target in targets))

    assert len(standin.issued_tokens) == 1
    assert sorted(d.inputs["execution_id"] for d in standin.dispatches) == [f"e{n}" for n in range(8)]


async def test_a_rejected_token_is_renewed_and_the_dispatch_retried(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    await dispatcher.dispatch(TARGET)
    standin.set_faults(reject_token_times=1)  # revokes the cached token

    await dispatcher.dispatch(TARGET)

    assert len(standin.issued_tokens) == 2
    assert len(standin.dispatches) == 2
    assert calls(standin, DISPATCH_PATH) == [DISPATCHED, 401, DISPATCHED]


async def test_a_token_rejected_twice_is_a_refusal(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    standin.set_faults(reject_token_times=10)

    with pytest.raises(DispatchRefusedError) as refused:
        await dispatcher.dispatch(TARGET)

    assert refused.value.status == 401
    assert calls(standin, TOKEN_PATH) == [201, 201]
    assert standin.dispatches == []


async def test_two_server_errors_then_success_dispatch_exactly_once(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    standin.set_faults(fail_times=2, fail_status=502)

    await dispatcher.dispatch(TARGET)

    assert calls(standin, DISPATCH_PATH) == [502, 502, DISPATCHED]
    assert len(standin.dispatches) == 1


async def test_server_errors_on_the_token_endpoint_are_retried(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    standin.set_faults(endpoint="access_tokens", fail_times=2)

    await dispatcher.dispatch(TARGET)

    assert calls(standin, TOKEN_PATH) == [500, 500, 201]
    assert len(standin.dispatches) == 1


async def test_a_rate_limit_is_waited_out_as_retry_after_asks(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    standin.set_faults(fail_times=1, fail_status=429, retry_after=0.4)
    started = time.monotonic()

    await dispatcher.dispatch(TARGET)

    assert time.monotonic() - started >= 0.4
    assert calls(standin, DISPATCH_PATH) == [429, DISPATCHED]


async def test_a_retry_after_beyond_the_limit_is_unavailable_at_once(
    standin: GithubStandin, keys: AppKey
) -> None:
    standin.set_faults(fail_times=1, fail_status=429, retry_after=120)

    async with dispatcher_for(standin.url, keys.private_pem, max_retry_after_seconds=5) as dispatcher:
        with pytest.raises(DispatchUnavailableError) as unavailable:
            await dispatcher.dispatch(TARGET)

    assert unavailable.value.retry_after == 120
    assert calls(standin, DISPATCH_PATH) == [429]


async def test_a_hanging_request_times_out_and_is_retried(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    standin.set_faults(hang_times=1, hang_seconds=10)
    started = time.monotonic()

    await dispatcher.dispatch(TARGET)

    assert time.monotonic() - started < 3  # gave up on the hanging request, did not wait 10s
    assert len(standin.dispatches) == 1
    assert len([r for r in standin.requests if r.path == DISPATCH_PATH and r.status == DISPATCHED]) == 1


async def test_a_422_is_refused_at_once_without_retries(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    standin.set_faults(refuse_repos=["execution-service"])

    with pytest.raises(DispatchRefusedError) as refused:
        await dispatcher.dispatch(TARGET)

    assert refused.value.status == 422
    assert "workflow_dispatch" in refused.value.reason
    assert calls(standin, DISPATCH_PATH) == [422]
    assert standin.dispatches == []


async def test_an_owner_outside_the_installation_is_refused(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    with pytest.raises(DispatchRefusedError) as refused:
        await dispatcher.dispatch(replace(TARGET, owner="someone-else"))

    assert refused.value.status == 404
    assert standin.dispatches == []


async def test_persistent_server_errors_are_unavailable_after_max_attempts(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    standin.set_faults(fail_times=100)

    with pytest.raises(DispatchUnavailableError, match=f"after {MAX_ATTEMPTS} attempts"):
        await dispatcher.dispatch(TARGET)

    assert calls(standin, DISPATCH_PATH) == [500] * MAX_ATTEMPTS
    assert standin.dispatches == []


async def test_an_unreachable_api_is_unavailable(keys: AppKey) -> None:
    async with running_github_standin(APP_ID, keys.public_pem) as gone:
        url = gone.url
    async with dispatcher_for(url, keys.private_pem, max_attempts=2) as dispatcher:
        with pytest.raises(DispatchUnavailableError, match="after 2 attempts"):
            await dispatcher.dispatch(TARGET)


async def test_a_key_other_than_the_apps_is_refused(standin: GithubStandin, other_keys: AppKey) -> None:
    async with dispatcher_for(standin.url, other_keys.private_pem) as impostor:
        with pytest.raises(DispatchRefusedError) as refused:
            await impostor.dispatch(TARGET)

    assert refused.value.status == 401
    assert calls(standin, TOKEN_PATH) == [401]


async def test_an_unstarted_dispatcher_says_so(keys: AppKey) -> None:
    with pytest.raises(RuntimeError, match="not started"):
        await dispatcher_for("http://127.0.0.1:9", keys.private_pem).dispatch(TARGET)


# The stand-in itself: it must refuse what GitHub refuses, or the tests above prove nothing.


async def _post(url: str, bearer: str, body: Any = None) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers={"Authorization": f"Bearer {bearer}"}) as response,
    ):
        return response.status


def _app_jwt(private_pem: str, **claims: Any) -> str:
    now = int(time.time())
    return jwt.encode({"iat": now - 60, "exp": now + 540, "iss": APP_ID, **claims}, private_pem, "RS256")


# Claims are made when the test runs: an expiry computed at collection goes stale in a long run.
@pytest.mark.parametrize(
    "make_claims",
    [lambda: {"iss": "999"}, lambda: {"exp": int(time.time()) + 700}, lambda: {"exp": int(time.time()) - 5}],
    ids=["other-app", "exp-too-far", "expired"],
)
async def test_the_standin_refuses_a_bad_app_jwt(
    standin: GithubStandin, keys: AppKey, other_keys: AppKey, make_claims: Callable[[], dict[str, Any]]
) -> None:
    assert await _post(standin.url + TOKEN_PATH, _app_jwt(keys.private_pem)) == 201
    assert await _post(standin.url + TOKEN_PATH, _app_jwt(keys.private_pem, **make_claims())) == 401
    assert await _post(standin.url + TOKEN_PATH, _app_jwt(other_keys.private_pem)) == 401


@pytest.mark.parametrize(
    "body",
    [
        {"ref": "main", "inputs": {f"k{n}": "v" for n in range(11)}},
        {"ref": "main", "inputs": {"count": 3}},
        {"ref": "", "inputs": {}},
        {"inputs": {}},
        {"ref": "main", "extra": 1},
        ["main"],
        {"ref": "main", "return_run_details": "yes"},
    ],
    ids=["11-inputs", "not-text", "empty-ref", "no-ref", "unknown-key", "not-object", "details-not-bool"],
)
async def test_the_standin_refuses_a_bad_dispatch(standin: GithubStandin, keys: AppKey, body: Any) -> None:
    async with dispatcher_for(standin.url, keys.private_pem) as dispatcher:
        await dispatcher.dispatch(TARGET)  # takes a valid installation token
    token = standin.issued_tokens[0].token

    assert await _post(standin.url + DISPATCH_PATH, token, body) == 422
    assert await _post(standin.url + DISPATCH_PATH, "ghs_unknown", {"ref": "main"}) == 401
    assert await _post(standin.url + DISPATCH_PATH, token, {"ref": "main"}) == 204
    assert len(standin.dispatches) == 2


async def test_the_standin_runs_as_a_process_with_a_control_api(keys: AppKey, tmp_path: Path) -> None:
    key_file = tmp_path / "app.pub.pem"
    key_file.write_text(keys.public_pem)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "execution_stream.dev_stack.github_standin", "--port", "0", "--app-id", APP_ID),
        *("--public-key-file", str(key_file)),
        cwd=project_root(),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        ready = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().split()
        assert ready[0] == "ready"
        url = ready[1]
        async with aiohttp.ClientSession() as session:
            async with session.post(url + "/_control/faults", json={"fail_times": 1}) as response:
                assert (await response.json())["fail_times"] == 1
            async with dispatcher_for(url, keys.private_pem) as dispatcher:
                await dispatcher.dispatch(TARGET)
            async with session.get(url + "/_control/dispatches") as response:
                recorded = await response.json()
            async with session.get(url + "/_control/requests") as response:
                statuses = [r["status"] for r in await response.json() if r["path"] == DISPATCH_PATH]
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)

    assert [(d["repo"], d["ref"], d["inputs"]) for d in recorded] == [(TARGET.repo, "main", TARGET.inputs)]
    assert statuses == [500, DISPATCHED]


async def test_a_private_key_with_escaped_newlines_is_accepted(standin: GithubStandin, keys: AppKey) -> None:
    escaped = keys.private_pem.strip().replace("\n", "\\n")  # as an environment variable may hold it

    async with dispatcher_for(standin.url, escaped) as dispatcher:
        await dispatcher.dispatch(TARGET)

    assert len(standin.dispatches) == 1


OTHER_INSTALLATION = "31337"
OTHER_TARGET = replace(TARGET, installation_id=OTHER_INSTALLATION, owner="other-org")


async def test_a_rate_limited_installation_is_unavailable_until_its_reset_and_others_go_on(
    keys: AppKey,
) -> None:
    installations = {INSTALLATION_ID: OWNER, OTHER_INSTALLATION: "other-org"}
    async with (
        running_github_standin(APP_ID, keys.public_pem, installations=installations) as standin,
        dispatcher_for(standin.url, keys.private_pem) as dispatcher,
    ):
        standin.set_faults(rate_limited_installations={INSTALLATION_ID: 3000})
        started = time.monotonic()

        with pytest.raises(DispatchUnavailableError) as first:
            await dispatcher.dispatch(TARGET)
        with pytest.raises(DispatchUnavailableError) as second:
            await dispatcher.dispatch(TARGET)
        await dispatcher.dispatch(OTHER_TARGET)

        assert time.monotonic() - started < 2  # nothing waited for the reset
        assert first.value.retry_after is not None
        assert 2990 <= first.value.retry_after <= 3001
        assert "rate limit exceeded" in first.value.reason
        assert second.value.retry_after is not None
        assert second.value.retry_after <= first.value.retry_after
        assert calls(standin, DISPATCH_PATH) == [403]  # the second never reached GitHub
        assert [d.installation_id for d in standin.dispatches] == [OTHER_INSTALLATION]
        assert set(dispatcher.blocked_installations()) == {INSTALLATION_ID}


async def test_a_secondary_rate_limit_without_a_time_waits_a_minute(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    secondary = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
    standin.set_faults(fail_times=1, fail_status=403, fail_message=secondary)

    with pytest.raises(DispatchUnavailableError) as unavailable:
        await dispatcher.dispatch(TARGET)

    assert unavailable.value.retry_after == 60
    assert calls(standin, DISPATCH_PATH) == [403]


async def test_a_403_that_is_no_rate_limit_is_refused(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    standin.set_faults(fail_times=1, fail_status=403, fail_message="Resource not accessible by integration")

    with pytest.raises(DispatchRefusedError):
        await dispatcher.dispatch(TARGET)


async def test_a_dispatch_applied_but_answered_too_late_is_sent_again(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    """The window README "Delivery" documents: GitHub's dispatch API has no idempotency key, so a
    dispatch whose answer did not come in time cannot be told from one that was never applied."""
    standin.set_faults(apply_then_hang_times=1, hang_seconds=REQUEST_TIMEOUT * 4)

    await dispatcher.dispatch(TARGET)

    assert len(standin.dispatches) == 2
    assert calls(standin, DISPATCH_PATH)[-1] == DISPATCHED


# Run details, and cancelling a run.

RUN_PATH = "/repos/jitsecurity/execution-service/actions/runs"
GHES_REFUSAL = 'Invalid request.\n\n"return_run_details" is not a permitted key.'


def cancel_path(run_id: int) -> str:
    return f"{RUN_PATH}/{run_id}/cancel"


def run_of(details: RunDetails | None, target: GithubWorkflowTarget = TARGET) -> GithubRun:
    assert details is not None
    return GithubRun(target.installation_id, target.owner, target.repo, details.workflow_run_id)


async def test_a_dispatch_returns_the_run_github_created(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    first = await dispatcher.dispatch(TARGET)
    second = await dispatcher.dispatch(replace(TARGET, inputs={"execution_id": "e2"}))

    recorded = standin.dispatches
    assert [d.return_run_details for d in recorded] == [True, True]
    run_id = recorded[0].workflow_run_id
    assert run_id is not None
    assert first == RunDetails(
        workflow_run_id=run_id,
        html_url=f"https://github.com/{OWNER}/execution-service/actions/runs/{run_id}",
        run_url=f"{standin.url}{RUN_PATH}/{run_id}",
    )
    assert second is not None
    assert second.workflow_run_id == recorded[1].workflow_run_id
    assert second.workflow_run_id > first.workflow_run_id
    assert calls(standin, DISPATCH_PATH) == [200, 200]


async def test_an_older_ghes_refusing_run_details_gets_each_dispatch_once_without_them(
    standin: GithubStandin, keys: AppKey, caplog: pytest.LogCaptureFixture
) -> None:
    standin.set_faults(refuse_return_run_details=True)

    with caplog.at_level(logging.WARNING, logger="execution_stream.adapters.github_dispatcher"):
        async with dispatcher_for(standin.url, keys.private_pem) as dispatcher:
            first = await dispatcher.dispatch(TARGET)
            assert calls(standin, DISPATCH_PATH) == [422, 204]  # refused, then sent again without
            later = [
                await dispatcher.dispatch(replace(TARGET, inputs={"execution_id": f"e{n}"})) for n in (2, 3)
            ]
            standin.set_faults()  # GitHub upgraded: this dispatcher does not ask again, a new one does
            after_upgrade = await dispatcher.dispatch(replace(TARGET, inputs={"execution_id": "e4"}))
            assert not dispatcher.supports_run_details()
        async with dispatcher_for(standin.url, keys.private_pem) as fresh:
            assert await fresh.dispatch(replace(TARGET, inputs={"execution_id": "e5"})) is not None

    assert (first, later, after_upgrade) == (None, [None, None], None)
    assert calls(standin, DISPATCH_PATH) == [422, 204, 204, 204, 204, 200]
    assert [d.inputs["execution_id"] for d in standin.dispatches] == ["e1", "e2", "e3", "e4", "e5"]
    assert [d.return_run_details for d in standin.dispatches] == [False] * 4 + [True]
    refusals = [r for r in caplog.records if "return_run_details" in r.getMessage()]
    assert len(refusals) == 1
    assert refusals[0].levelno == logging.WARNING


async def test_concurrent_dispatches_refused_run_details_are_each_dispatched_once(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    standin.set_faults(refuse_return_run_details=True)
    targets = [replace(TARGET, inputs={"execution_id": f"e{n}"}) for n in range(6)]

    with caplog.at_level(logging.WARNING, logger="execution_stream.adapters.github_dispatcher"):
        results = await asyncio.gather(*(dispatcher.dispatch(target) for target in targets))

    assert results == [None] * 6
    assert sorted(d.inputs["execution_id"] for d in standin.dispatches) == [f"e{n}" for n in range(6)]
    assert calls(standin, DISPATCH_PATH).count(204) == 6
    assert len([r for r in caplog.records if "return_run_details" in r.getMessage()]) == 1


async def test_a_refusal_after_the_run_details_fallback_is_a_refusal(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    standin.set_faults(refuse_return_run_details=True, refuse_repos=["execution-service"])

    with pytest.raises(DispatchRefusedError) as refused:
        await dispatcher.dispatch(TARGET)

    assert refused.value.status == 422
    assert "workflow_dispatch" in refused.value.reason
    assert calls(standin, DISPATCH_PATH) == [422, 422]
    assert standin.dispatches == []


async def test_a_run_is_cancelled_and_github_records_which(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    await dispatcher.dispatch(replace(TARGET, inputs={"execution_id": "other"}))
    run = run_of(await dispatcher.dispatch(TARGET))

    assert await dispatcher.cancel_run(run) is CancelOutcome.REQUESTED
    assert await dispatcher.cancel_run(run) is CancelOutcome.REQUESTED  # GitHub: still cancelling

    assert [(c.workflow_run_id, c.owner, c.repo) for c in standin.cancels] == [
        (run.workflow_run_id, OWNER, TARGET.repo)
    ] * 2
    assert standin.dispatches[1].workflow_run_id == run.workflow_run_id
    assert calls(standin, cancel_path(run.workflow_run_id)) == [202, 202]
    assert len(standin.issued_tokens) == 1  # the dispatches' token


async def test_cancelling_a_finished_run_says_so(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    run = run_of(await dispatcher.dispatch(TARGET))
    standin.complete_run(run.workflow_run_id)

    assert await dispatcher.cancel_run(run) is CancelOutcome.ALREADY_FINISHED
    assert calls(standin, cancel_path(run.workflow_run_id)) == [409]
    assert standin.cancels == []


async def test_cancelling_an_unknown_run_is_refused(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    run = run_of(await dispatcher.dispatch(TARGET))
    elsewhere = replace(run, repo="another-repo")

    with pytest.raises(DispatchRefusedError) as unknown:
        await dispatcher.cancel_run(replace(run, workflow_run_id=42))
    with pytest.raises(DispatchRefusedError) as other_repo:
        await dispatcher.cancel_run(elsewhere)

    assert (unknown.value.status, other_repo.value.status) == (404, 404)
    assert calls(standin, cancel_path(42)) == [404]  # refused at once, not retried
    assert standin.cancels == []


async def test_server_errors_on_a_cancel_are_retried(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    standin.set_faults(endpoint="cancel", fail_times=2, fail_status=502)
    run = run_of(await dispatcher.dispatch(TARGET))  # the dispatch is spared

    assert await dispatcher.cancel_run(run) is CancelOutcome.REQUESTED

    assert calls(standin, DISPATCH_PATH) == [DISPATCHED]
    assert calls(standin, cancel_path(run.workflow_run_id)) == [502, 502, 202]
    assert len(standin.cancels) == 1


async def test_a_cancel_failing_every_attempt_is_unavailable(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    run = run_of(await dispatcher.dispatch(TARGET))
    standin.set_faults(endpoint="any", fail_times=100)

    with pytest.raises(DispatchUnavailableError, match=f"after {MAX_ATTEMPTS} attempts"):
        await dispatcher.cancel_run(run)

    assert calls(standin, cancel_path(run.workflow_run_id)) == [500] * MAX_ATTEMPTS
    assert standin.cancels == []


async def test_a_cancel_with_a_rejected_token_renews_it(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    run = run_of(await dispatcher.dispatch(TARGET))
    standin.set_faults(reject_token_times=1)

    assert await dispatcher.cancel_run(run) is CancelOutcome.REQUESTED

    assert calls(standin, cancel_path(run.workflow_run_id)) == [401, 202]
    assert len(standin.issued_tokens) == 2


async def test_a_rate_limited_installation_cancels_nothing_until_its_reset(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    run = run_of(await dispatcher.dispatch(TARGET))
    standin.set_faults(rate_limited_installations={INSTALLATION_ID: 3000})
    with pytest.raises(DispatchUnavailableError):
        await dispatcher.dispatch(TARGET)  # GitHub's 403 blocks the installation

    with pytest.raises(DispatchUnavailableError) as unavailable:
        await dispatcher.cancel_run(run)

    assert unavailable.value.retry_after is not None
    assert unavailable.value.retry_after > 2900
    assert calls(standin, cancel_path(run.workflow_run_id)) == []  # no request was made
    assert standin.cancels == []


async def test_a_rate_limited_cancel_blocks_its_installation(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    run = run_of(await dispatcher.dispatch(TARGET))
    standin.set_faults(rate_limited_installations={INSTALLATION_ID: 3000})

    for _ in range(2):
        with pytest.raises(DispatchUnavailableError):
            await dispatcher.cancel_run(run)

    assert calls(standin, cancel_path(run.workflow_run_id)) == [403]
    assert set(dispatcher.blocked_installations()) == {INSTALLATION_ID}


async def test_the_standin_refuses_run_details_as_an_older_ghes(standin: GithubStandin, keys: AppKey) -> None:
    async with dispatcher_for(standin.url, keys.private_pem) as dispatcher:
        await dispatcher.dispatch(TARGET)  # takes a valid installation token
    token = standin.issued_tokens[0].token
    standin.set_faults(refuse_return_run_details=True)
    body = {"ref": "main", "return_run_details": True}

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            standin.url + DISPATCH_PATH, json=body, headers={"Authorization": f"Bearer {token}"}
        ) as answer,
    ):
        assert answer.status == 422
        assert (await answer.json())["message"] == GHES_REFUSAL
    assert await _post(standin.url + DISPATCH_PATH, token, {"ref": "main"}) == 204
    assert [d.return_run_details for d in standin.dispatches] == [True, False]


async def test_the_standin_lists_cancels_and_completes_runs_through_its_control_api(
    standin: GithubStandin, dispatcher: GithubActionsDispatcher
) -> None:
    run = run_of(await dispatcher.dispatch(TARGET))
    token = standin.issued_tokens[0].token
    cancel_url = standin.url + cancel_path(run.workflow_run_id)

    assert await _post(cancel_url, "ghs_unknown") == 401
    assert await _post(cancel_url, token) == 202
    async with aiohttp.ClientSession() as session:
        async with session.get(standin.url + "/_control/cancels") as response:
            [cancel] = await response.json()
        async with session.get(standin.url + "/_control/dispatches") as response:
            [dispatch] = await response.json()
        async with session.post(standin.url + f"/_control/runs/{run.workflow_run_id}/complete") as response:
            assert response.status == 200
        async with session.post(standin.url + "/_control/runs/42/complete") as response:
            assert response.status == 404
        assert await _post(cancel_url, token) == 409
        async with session.post(standin.url + "/_control/reset") as response:
            assert response.status == 200
    assert await _post(cancel_url, token) == 401  # the reset forgot the tokens
    with pytest.raises(DispatchRefusedError) as forgotten:
        await dispatcher.cancel_run(run)  # with a new token: the reset forgot the runs too

    assert cancel["workflow_run_id"] == run.workflow_run_id
    assert (cancel["owner"], cancel["repo"], cancel["installation_id"]) == (
        OWNER,
        TARGET.repo,
        INSTALLATION_ID,
    )
    assert dispatch["workflow_run_id"] == run.workflow_run_id
    assert dispatch["return_run_details"] is True
    assert forgotten.value.status == 404
    assert standin.cancels == []
