"""Enrichment: the job a runner receives, and where a GitHub workflow is dispatched."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from execution_stream.domain.enrichment import (
    GITHUB_INPUT_NAMES,
    MAX_GITHUB_INPUTS,
    DispatchedJob,
    DispatchTargetError,
    build_dispatched_job,
    github_workflow_target,
)
from execution_stream.domain.executions import build_execution
from execution_stream.domain.models import Execution, Step
from tests.support.factories import asset, execution, trigger_event

NOW = datetime(2026, 1, 1, 12, 0, 0, 5, tzinfo=UTC)
STATUS_TOPIC = "execution-status-test"
# The seed's example item's additional_attributes.
SEED_ATTRIBUTES: dict[str, Any] = {
    "owner": "jitsecurity",
    "user_vendor_name": "jitsecurity",
    "original_repository": "execution-service",
    "user_vendor_id": "62615683",
    "languages": ["python", "any"],
    "pull_request_number": "22",
    "installation_id": "24915845",
    "commits": {
        "head_sha": "d3ee6efdf02df6fbfef28f916c359b23e9131c1a",
        "base_sha": "045f333e854d65ba6aa04c9a27b8386a377455f4",
    },
    "type": "AdditionalAttributesCode",
    "app_id": "161076",
    "branch": "main",
}


def seed_execution(**attribute_changes: Any) -> Execution:
    """An execution whose stored attributes are the seed's, changed (a None value removes the
    attribute): as an execution stored before its asset named them, or from an asset that does not."""
    attributes = {**SEED_ATTRIBUTES, **attribute_changes}
    attributes = {name: value for name, value in attributes.items() if value is not None}
    event = trigger_event(additional_attributes=SEED_ATTRIBUTES)
    built = build_execution(event, asset(), NOW - timedelta(minutes=5))
    return built.model_copy(update={"additional_attributes": attributes})


def test_the_job_carries_every_field_of_the_execution_a_runner_needs() -> None:
    source = seed_execution()

    job = build_dispatched_job(source, STATUS_TOPIC, 900, NOW)

    assert job.model_dump(mode="json") == {
        "type": "job",
        "tenant_id": "tenant-a",
        "jit_event_id": "event-1",
        "execution_id": source.execution_id,
        "job_runner": "github_actions",
        "job": {
            "steps": [
                {
                    "name": "Run Bandit",
                    "uses": "ghcr.io/jitsecurity-controls/control-bandit-slim:latest",
                    "params": {"args": "-r /code -f json -q -ll -iii"},
                }
            ],
            "job_name": "static-code-analysis-python",
            "workflow_slug": "workflow-sast",
            "plan_slug": "jit-plan",
            "plan_item_slug": "item-code-vulnerability",
        },
        "asset": {
            "asset_id": "asset-1",
            "asset_name": "execution-service",
            "asset_type": "repo",
            "vendor": "github",
            "owner": "jitsecurity",
            "installation_id": "24915845",
            "app_id": "161076",
            "user_vendor_id": "62615683",
            "user_vendor_name": "jitsecurity",
        },
        "additional_attributes": SEED_ATTRIBUTES,
        "timeout_seconds": 900,
        "report_status_to": {
            "topic": STATUS_TOPIC,
            "key": "tenant-a",
            "run_ref_field": "run_ref",
            "html_url_field": "html_url",
        },
        "deadline_at": "2026-01-01T12:15:00.000005",
        "attempt": 1,
    }
    assert len(source.execution_id) == 32


def test_the_job_survives_the_wire() -> None:
    job = build_dispatched_job(seed_execution(), STATUS_TOPIC, 60, NOW)

    assert DispatchedJob.model_validate_json(job.model_dump_json()) == job


def test_the_deadline_is_formatted_like_created_at() -> None:
    source = execution()  # created at a whole second: the microseconds must still be written

    job = build_dispatched_job(source, STATUS_TOPIC, 3600, datetime(2026, 1, 1, tzinfo=UTC))

    assert job.deadline_at == "2026-01-01T01:00:00.000000"
    assert len(job.deadline_at) == len(source.created_at)


def test_vendor_details_that_are_absent_stay_unknown() -> None:
    bare = asset().model_copy(update={"installation_id": None, "app_id": None})
    source = build_execution(trigger_event(), bare, NOW)  # attributes: owner only
    job = build_dispatched_job(source, STATUS_TOPIC, 60, NOW)

    assert job.asset.owner == "jitsecurity"
    assert (job.asset.installation_id, job.asset.app_id) == (None, None)
    assert (job.asset.user_vendor_id, job.asset.user_vendor_name) == (None, None)


def test_the_asset_owner_falls_back_to_the_user_vendor_and_numbers_become_text() -> None:
    source = seed_execution(
        owner=None, user_vendor_name="octo-org", installation_id=24915845, app_id={"x": 1}
    )

    job = build_dispatched_job(source, STATUS_TOPIC, 60, NOW)

    assert job.asset.owner == "octo-org"
    assert job.asset.installation_id == "24915845"
    assert job.asset.app_id is None


def test_a_timeout_under_one_second_is_refused() -> None:
    with pytest.raises(ValueError, match="timeout_seconds"):
        build_dispatched_job(execution(), STATUS_TOPIC, 0, NOW)


def test_the_seed_dispatches_into_the_assets_own_repository_on_its_branch() -> None:
    source = seed_execution(branch="release-7")

    target = github_workflow_target(source)

    assert target.installation_id == "24915845"
    assert target.owner == "jitsecurity"
    assert target.repo == "execution-service"
    assert target.workflow_file == "workflow-sast.yml"
    assert target.ref == "release-7"


def test_a_central_workflow_repository_runs_on_main_not_on_the_assets_branch() -> None:
    target = github_workflow_target(seed_execution(workflow_repository=".jit", branch="release-7"))

    assert (target.repo, target.ref) == (".jit", "main")


def test_workflow_ref_wins_over_branch_and_main() -> None:
    own = github_workflow_target(seed_execution(workflow_ref="v2", branch="release-7"))
    central = github_workflow_target(seed_execution(workflow_ref="v2", workflow_repository="jit"))

    assert (own.ref, central.ref) == ("v2", "v2")


def test_no_branch_means_main() -> None:
    assert github_workflow_target(seed_execution(branch=None)).ref == "main"


def test_the_owner_falls_back_to_the_user_vendor_name() -> None:
    target = github_workflow_target(seed_execution(owner=None, user_vendor_name="octo-org"))

    assert target.owner == "octo-org"


def test_a_numeric_installation_id_is_accepted_as_text() -> None:
    assert github_workflow_target(seed_execution(installation_id=24915845)).installation_id == "24915845"


def test_the_inputs_are_ten_strings_naming_the_execution_and_its_steps() -> None:
    source = seed_execution()

    inputs = github_workflow_target(source).inputs

    assert list(inputs) == list(GITHUB_INPUT_NAMES)
    assert len(inputs) <= MAX_GITHUB_INPUTS
    assert all(isinstance(value, str) for value in inputs.values())
    assert {name: value for name, value in inputs.items() if name != "steps"} == {
        "tenant_id": "tenant-a",
        "jit_event_id": "event-1",
        "execution_id": source.execution_id,
        "plan_slug": "jit-plan",
        "plan_item_slug": "item-code-vulnerability",
        "job_name": "static-code-analysis-python",
        "asset_id": "asset-1",
        "asset_name": "execution-service",
        "asset_type": "repo",
    }
    steps = [Step.model_validate(step) for step in json.loads(inputs["steps"])]
    assert steps == source.steps


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"installation_id": None}, "'installation_id'"),
        ({"installation_id": ""}, "'installation_id'"),
        ({"owner": None, "user_vendor_name": None}, "'owner' or 'user_vendor_name'"),
        ({"original_repository": None}, "'workflow_repository' or 'original_repository'"),
    ],
)
def test_a_missing_target_attribute_is_named(changes: dict[str, Any], named: str) -> None:
    source = seed_execution(**changes)

    with pytest.raises(DispatchTargetError, match=f"has no {named}") as raised:
        github_workflow_target(source)

    assert source.execution_id in str(raised.value)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"installation_id": "249/../1"}, "not a number"),
        ({"installation_id": {"id": 1}}, "must be a string"),
        ({"installation_id": True}, "must be a string"),
        ({"owner": "jit/security"}, "not a valid GitHub owner"),
        ({"original_repository": ".."}, "not a valid GitHub repository"),
        ({"workflow_repository": "a?b"}, "not a valid GitHub repository"),
        ({"branch": "my branch"}, "not a valid GitHub ref"),
        ({"workflow_ref": "x" * 256}, "not a valid GitHub ref"),
    ],
)
def test_a_malformed_target_attribute_is_refused(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(DispatchTargetError, match=problem):
        github_workflow_target(seed_execution(**changes))


def test_a_workflow_slug_that_cannot_name_a_file_is_refused() -> None:
    event = trigger_event(workflow_slug="sast/../../x", additional_attributes=SEED_ATTRIBUTES)
    source = build_execution(event, asset(), NOW)

    with pytest.raises(DispatchTargetError, match="workflow file"):
        github_workflow_target(source)


def test_inputs_beyond_githubs_size_limit_are_refused() -> None:
    big = Step(name="Run Bandit", uses="ghcr.io/x:latest", params={"args": "x" * 70_000})
    event = trigger_event(steps=[big], additional_attributes=SEED_ATTRIBUTES)

    with pytest.raises(DispatchTargetError, match="65535"):
        github_workflow_target(build_execution(event, asset(), NOW))
