"""`execution-stream demo`'s pure parts: its data, its runner's reading and reports, its live view,
its tokens, and where it finds the stack."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from execution_stream.api.auth import TokenVerifier
from execution_stream.demo.api_check import curl_command, mismatches
from execution_stream.demo.progress import Progress
from execution_stream.demo.run import DemoOptions, demo_settings, overlaid
from execution_stream.demo.runner import (
    JobRef,
    end_of,
    job_of_runner_record,
    jobs_of_dispatches,
    status_report,
)
from execution_stream.demo.seed import (
    DEV_ASSET,
    FAILURE,
    SEED_ASSET,
    SEED_TENANT,
    TOPIC_RUNNER,
    DemoJob,
    demo_jobs,
)
from execution_stream.dev_stack.dev_tokens import DEV_TENANT, tenant_token
from execution_stream.dev_stack.github_standin import RecordedDispatch
from execution_stream.domain.enrichment import (
    GITHUB_ACTIONS,
    build_dispatched_job,
    github_inputs,
    github_workflow_target,
)
from execution_stream.domain.executions import build_execution
from execution_stream.domain.models import (
    Asset,
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    ExecutionStatusUpdate,
    TriggerEvent,
)
from execution_stream.operations.publishing import Kind, check_documents
from execution_stream.settings import InvalidSettingsError, Settings

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def jobs(with_github: bool = True) -> list[DemoJob]:
    counter = itertools.count(1)
    return demo_jobs(with_github, new_id=lambda: f"event-{next(counter)}")


def execution_of(job: DemoJob) -> Execution:
    asset = SEED_ASSET if job.tenant_id == SEED_TENANT else DEV_ASSET
    return build_execution(TriggerEvent.model_validate(job.trigger), Asset.model_validate(asset), NOW)


def test_the_demo_runs_three_jobs_per_tenant_on_both_kinds_of_runner_and_fails_every_third() -> None:
    planned = jobs()

    assert [(j.tenant_id, j.job_runner, j.fails) for j in planned] == [
        (SEED_TENANT, GITHUB_ACTIONS, False),
        (SEED_TENANT, TOPIC_RUNNER, False),
        (SEED_TENANT, GITHUB_ACTIONS, True),
        (DEV_TENANT, TOPIC_RUNNER, False),
        (DEV_TENANT, GITHUB_ACTIONS, False),
        (DEV_TENANT, TOPIC_RUNNER, True),
    ]
    assert [j.jit_event_id for j in planned] == [f"event-{n}" for n in range(1, 7)]


def test_each_run_has_fresh_jit_event_ids() -> None:
    first, second = demo_jobs(), demo_jobs()

    assert len({j.jit_event_id for j in first + second}) == 12


def test_without_the_local_github_every_job_is_topic_fed() -> None:
    assert {j.job_runner for j in jobs(with_github=False)} == {TOPIC_RUNNER}


def test_the_demo_s_triggers_and_assets_are_what_the_worker_accepts() -> None:
    planned = jobs()

    checked = check_documents([j.trigger for j in planned], Kind.TRIGGER)
    assets = check_documents([dict(SEED_ASSET), dict(DEV_ASSET)], Kind.ASSET)

    assert [c.key for c in checked] == [j.tenant_id for j in planned]
    assert [a.key for a in assets] == [SEED_ASSET["asset_id"], DEV_ASSET["asset_id"]]


def test_each_github_job_has_a_complete_dispatch_target_matching_its_asset() -> None:
    # build_execution refuses attributes that contradict the asset; the target names every part.
    for job in jobs():
        execution = execution_of(job)
        target = github_workflow_target(execution)
        asset = SEED_ASSET if job.tenant_id == SEED_TENANT else DEV_ASSET
        assert (target.installation_id, target.owner, target.repo, target.ref) == (
            asset["installation_id"],
            asset["owner"],
            asset["asset_name"],
            "main",
        )


def test_the_seed_asset_is_the_seed_s_example() -> None:
    assert SEED_ASSET == {
        "asset_id": "81282625-8050-4305-8655-4f8fbc357921",
        "tenant_id": "92c4b3cc-ebdb-4662-8dbd-765a2e3b3af4",
        "asset_name": "execution-service",
        "asset_type": "repo",
        "vendor": "github",
        "owner": "jitsecurity",
        "installation_id": "24915845",
        "app_id": "161076",
        "user_vendor_id": "62615683",
        "user_vendor_name": "jitsecurity",
    }


def test_the_runner_reads_the_ids_of_a_topic_fed_job_and_of_a_github_dispatch() -> None:
    execution = execution_of(jobs()[1])
    job = build_dispatched_job(execution, "execution-status", 60, NOW)
    dispatch = RecordedDispatch("1", "o", "r", "w.yml", "main", github_inputs(execution), NOW, None, None)
    expected = JobRef(execution.tenant_id, execution.jit_event_id, execution.execution_id)

    assert job_of_runner_record(job.model_dump_json().encode()) == expected
    assert jobs_of_dispatches([dispatch.as_json(), {"inputs": {"tenant_id": "t"}}, "x"]) == [expected]
    assert job_of_runner_record(b'{"not": "a job"}') is None
    assert job_of_runner_record(None) is None
    assert jobs_of_dispatches({"not": "a list"}) == []


def test_the_runner_reports_as_a_runner_does_and_fails_the_planned_ones() -> None:
    failing, succeeding = jobs()[2], jobs()[0]
    ref = JobRef("tenant-a", "event-1", "e" * 32)

    status, error = end_of(failing)
    report = status_report(ref, status, NOW, error)

    assert ExecutionStatusUpdate.model_validate_json(report.model_dump_json()) == report
    assert (report.status, report.error) == (ExecutionStatus.FAILED, FAILURE)
    assert end_of(succeeding) == (ExecutionStatus.COMPLETED, None)


def event(job: DemoJob, status: ExecutionStatus, previous: ExecutionStatus | None, **more: object) -> bytes:
    fields: dict[str, object] = {
        "tenant_id": job.tenant_id,
        "jit_event_id": job.jit_event_id,
        "execution_id": f"{job.jit_event_id}-execution",
        "plan_item_slug": "item",
        "job_runner": job.job_runner,
        "status": status,
        "previous_status": previous,
        "has_findings": False,
        "error": None,
        "at": "2026-01-01T00:00:00",
    }
    return ExecutionEvent.model_validate(fields | more).model_dump_json().encode()


def test_the_live_view_prints_each_change_of_the_demo_s_executions_once() -> None:
    planned = jobs()[:2]
    progress = Progress(planned)
    first, second = planned
    pending, dispatched, running = (
        ExecutionStatus.PENDING,
        ExecutionStatus.DISPATCHED,
        ExecutionStatus.RUNNING,
    )
    completed, failed = ExecutionStatus.COMPLETED, ExecutionStatus.FAILED

    lines = [
        progress.observe(event(first, pending, None)),
        progress.observe(event(first, dispatched, pending)),
        progress.observe(event(first, dispatched, pending)),  # redelivered
        progress.observe(event(DemoJob("other", "x", "r", False, {}), pending, None)),  # not the demo's
        progress.observe(b"not json"),
        progress.observe(event(second, failed, pending, error="dispatch_refused")),
        progress.observe(event(second, running, pending)),  # after its end: stale
    ]

    pad = " " * (len(SEED_TENANT) - len(first.tenant_id))
    assert lines == [
        f"{first.tenant_id}{pad}  event-1-…  github_actions  pending",
        f"{first.tenant_id}{pad}  event-1-…  github_actions  pending -> dispatched",
        None,
        None,
        None,
        f"{second.tenant_id}{pad}  event-2-…  jit_runner      pending -> failed  (dispatch_refused)",
        None,
    ]
    assert not progress.ended()
    assert progress.describe_unfinished() == f"{SEED_TENANT} github_actions jit_event_id=event-1 (dispatched)"
    progress.observe(event(first, completed, dispatched))
    assert progress.ended()
    assert progress.counts() == "1 completed, 1 failed"
    assert progress.final_statuses() == {
        "event-1-execution": (SEED_TENANT, completed),
        "event-2-execution": (SEED_TENANT, failed),
    }


def test_a_job_with_no_event_yet_is_unfinished() -> None:
    progress = Progress(jobs()[3:4])

    assert progress.describe_unfinished() == f"{DEV_TENANT} jit_runner jit_event_id=event-4 (no event)"


def test_a_minted_token_is_one_the_api_accepts_for_its_tenant() -> None:
    settings = Settings.model_validate(
        {"jwt_secret": SecretStr("s" * 32), "jwt_audience": "web", "jwt_issuer": "auth", "api_port": 8090}
    )

    token = tenant_token(settings, DEV_TENANT)

    assert token is not None
    assert TokenVerifier.from_settings(settings).tenant_of(f"Bearer {token}") == DEV_TENANT
    assert curl_command(settings, token) == (
        f'curl -H "Authorization: Bearer {token}" http://127.0.0.1:8090/executions'
    )


def test_without_a_secret_the_curl_command_names_a_variable() -> None:
    settings = Settings.model_validate({})

    assert tenant_token(settings, DEV_TENANT) is None
    assert curl_command(settings, None) == (
        'curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/executions'
    )


def test_an_execution_the_api_lists_otherwise_is_named() -> None:
    expected = {"e1": ExecutionStatus.COMPLETED, "e2": ExecutionStatus.FAILED, "e3": ExecutionStatus.FAILED}

    assert mismatches(expected, {"e1": "completed", "e2": "running"}) == [
        "e2 is failed but the API lists running",
        "e3 is failed but the API lists nothing",
    ]


def test_the_dev_environment_fills_what_the_real_environment_does_not_set() -> None:
    real = Settings.model_validate({"api_port": 9999, "topic_assets": "my-assets"})
    variables = {
        "EXECUTION_STREAM_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:40123",
        "EXECUTION_STREAM_API_PORT": "40127",
        "EXECUTION_STREAM_JWT_SECRET": "generated",
        "EXECUTION_STREAM_TENANT_CONCURRENCY_LIMITS": '{"dev-tenant": 2}',
        "EXECUTION_STREAM_NOT_A_SETTING": "x",
        "TOKEN": "abc",
    }

    settings = overlaid(real, variables, Path("dev.env"))

    assert settings.kafka_bootstrap_servers == "127.0.0.1:40123"
    assert (settings.api_port, settings.topic_assets) == (9999, "my-assets")
    assert settings.jwt_secret == SecretStr("generated")
    assert settings.tenant_concurrency_limits == {"dev-tenant": 2}


def test_an_unusable_dev_environment_is_one_line_naming_the_file() -> None:
    with pytest.raises(InvalidSettingsError, match=r"invalid settings in dev\.env: api_port: "):
        overlaid(Settings.model_validate({}), {"EXECUTION_STREAM_API_PORT": "eighty"}, Path("dev.env"))


def test_an_environment_naming_a_broker_is_used_as_it_is(tmp_path: Path) -> None:
    real = Settings.model_validate({"kafka_bootstrap_servers": "broker:9092"})

    # No dev environment file is read: there is none at this path, and that is no error.
    assert demo_settings(real, None) is real
    assert not (tmp_path / "dev.env").exists()


@pytest.mark.parametrize(("timeout", "work"), [(0, 3), (-1, 3), (10, -0.5)])
def test_options_out_of_range_are_refused(timeout: float, work: float) -> None:
    with pytest.raises(ValueError, match="must"):
        DemoOptions(timeout_seconds=timeout, work_seconds=work)
