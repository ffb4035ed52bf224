"""DynamoDB refusing the service itself (IAM, credentials, a missing table) is an operator's incident:
classified apart from a refused record, paused on with a loud line and a metric, never dead-lettered."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from prometheus_client import generate_latest

from execution_stream.adapters.dynamodb_client import ACCESS_ERROR_CODES, translate
from execution_stream.api.middleware import json_errors
from execution_stream.domain.executions import apply_status
from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.domain.store import (
    CreateResult,
    ExecutionKey,
    RepositoryAccessError,
    RepositoryError,
    RepositoryUnavailableError,
    StatusChange,
    StatusUpdateResult,
)
from execution_stream.pipeline import retrying
from execution_stream.pipeline.messages import Destination, Effects, SourceRecord
from execution_stream.pipeline.status_updates import StatusUpdateStep
from execution_stream.pipeline.triggers import TriggerStep
from execution_stream.streaming import agent_loop
from execution_stream.streaming.metrics import WorkerMetrics
from tests.support.factories import BASE_TIME, asset, execution, trigger_event
from tests.support.fake_store import FakeStore

DENIED = "AccessDeniedException"
PAUSES_METRIC = "execution_stream_dependency_pauses_total"


def client_error(code: str, message: str = "no") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "PutItem")


@pytest.mark.parametrize("code", sorted(ACCESS_ERROR_CODES))
def test_a_store_refusing_the_service_is_an_access_error(code: str) -> None:
    error = translate(client_error(code, "not authorized"), "create execution")

    assert isinstance(error, RepositoryAccessError)
    assert isinstance(error, RepositoryUnavailableError)  # every pause path pauses on it
    assert error.code == code
    assert str(error) == f"create execution: {code}: not authorized"


def test_missing_credentials_are_an_access_error() -> None:
    error = translate(NoCredentialsError(), "get execution")

    assert isinstance(error, RepositoryAccessError)
    assert error.code == "NoCredentialsError"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (client_error("ThrottlingException"), RepositoryUnavailableError),
        (EndpointConnectionError(endpoint_url="http://dynamodb"), RepositoryUnavailableError),
        (client_error("ValidationException"), RepositoryError),
    ],
)
def test_other_failures_keep_their_kind(error: Exception, kind: type[RepositoryError]) -> None:
    translated = translate(error, "create execution")

    assert type(translated) is kind


def test_a_pause_on_an_access_error_is_a_counted_error_line(caplog: pytest.LogCaptureFixture) -> None:
    before = retrying.store_access_pauses[DENIED]
    with caplog.at_level(logging.WARNING, logger=retrying.logger.name):
        retrying.report_pause("trigger_execution", 1.5, denied())
        retrying.report_pause("trigger_execution", 1.5, RepositoryUnavailableError("throttled"))

    [loud, quiet] = caplog.records
    assert loud.levelno == logging.ERROR
    assert "trigger_execution paused 1.5s" in loud.getMessage()
    assert "an operator must" in loud.getMessage()
    assert (loud.__dict__["dependency"], loud.__dict__["reason"]) == ("dynamodb", DENIED)
    assert quiet.levelno == logging.WARNING
    assert retrying.store_access_pauses[DENIED] == before + 1


def test_the_worker_metrics_show_the_pauses() -> None:
    metrics = WorkerMetrics()
    retrying.report_pause("execution_status", 0.1, denied())

    text = generate_latest(metrics.registry).decode()

    count = retrying.store_access_pauses[DENIED]
    assert f'{PAUSES_METRIC}{{dependency="dynamodb",reason="{DENIED}"}} {float(count)}' in text


async def test_until_done_waits_out_an_access_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(retrying, "MAX_PAUSE_SECONDS", 0.0)
    answers: list[Exception | str] = [denied(), denied(), "stored"]

    async def operation() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    with caplog.at_level(logging.ERROR):
        assert await agent_loop.until_done(operation, "trigger_execution") == "stored"

    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.ERROR]


class DeniedRepository(FakeStore):
    """Refuses the service its first `denials` calls, as DynamoDB does during an IAM incident."""

    def __init__(self, denials: int) -> None:
        super().__init__()
        self.denials = denials

    def _check_access(self) -> None:
        if self.denials > 0:
            self.denials -= 1
            raise denied()

    async def create(self, execution: Execution) -> CreateResult:
        self._check_access()
        return await super().create(execution)

    async def create_many(self, executions: Sequence[Execution]) -> list[CreateResult]:
        self._check_access()
        return await super().create_many(executions)

    async def update_status(
        self, key: ExecutionKey, change: StatusChange, plan_item_slug: str | None = None
    ) -> StatusUpdateResult:
        self._check_access()
        return await super().update_status(key, change, plan_item_slug)


async def test_a_trigger_is_not_dead_lettered_when_the_store_refuses_the_service() -> None:
    event = trigger_event("tenant-a", "event-1", "asset-1")
    record = SourceRecord("trigger-execution", 0, 1, b"tenant-a", event.model_dump_json().encode())
    step = TriggerStep(DeniedRepository(denials=1), {"asset-1": asset()}, lambda: BASE_TIME)

    with pytest.raises(RepositoryAccessError):
        await step.handle([record])


async def test_a_status_update_waits_for_the_store_and_is_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retrying, "MAX_PAUSE_SECONDS", 0.0)
    repository = DeniedRepository(denials=0)
    stored = execution()
    await repository.create(apply_status(stored, ExecutionStatus.DISPATCHED, BASE_TIME))
    repository.denials = 3
    update = {"status": "running", "at": "2026-01-01T00:01:00"}
    update |= {k: getattr(stored, k) for k in ("tenant_id", "jit_event_id", "execution_id")}
    record = SourceRecord("execution-status", 0, 1, b"tenant-a", json.dumps(update).encode())

    effects = await StatusUpdateStep(repository).handle([record])

    assert repository.denials == 0
    assert destinations(effects) == {Destination.EVENTS}
    assert repository.items[ExecutionKey.of(stored)].status is ExecutionStatus.RUNNING


async def test_the_api_answers_503_while_the_store_refuses_the_service() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise denied()

    response = await json_errors(make_mocked_request("GET", "/executions"), handler)

    assert isinstance(response, web.Response)
    assert response.status == 503
    assert response.text is not None
    assert json.loads(response.text)["error"]["code"] == "service_unavailable"


def denied() -> RepositoryAccessError:
    return RepositoryAccessError(f"create execution: {DENIED}: User is not authorized", DENIED)


def destinations(effects: Effects) -> set[Any]:
    return {outgoing.destination for outgoing in effects.outgoing}
