"""Enrichment: an execution becomes the job its runner receives, and the GitHub dispatch it needs.

## The job a topic-fed runner receives (`DispatchedJob`, on `runner-jobs`)
The ids and the runner at the top level; the job (steps, names, slugs); the asset's context; the
trigger's additional_attributes verbatim; the timeout and the moment it runs out (`deadline_at`, in
the format of `created_at`); and where to report status (`report_status_to`: the execution-status
topic and the key to send with, the tenant_id, so the report lands on the tenant's partition).

## Where a `github_actions` job is dispatched (`github_workflow_target`)
As in the seed's example item, the trigger service copies the asset's GitHub context into the
execution's additional_attributes; the target is read from there and nowhere else:

- installation_id: `installation_id` (the GitHub App installation; digits only).
- owner: `owner`, else `user_vendor_name`.
- repo: `workflow_repository` when the trigger names one (a central repository of the customer's
  organisation that runs the controls, as the original Jit service did), else `original_repository`
  (the asset's own repository).
- workflow_file: `<workflow_slug>.yml`, in that repository's `.github/workflows/`.
- ref: `workflow_ref` when given; else `branch` when the workflow runs in the asset's own repository
  (the branch the event is about); else `main` (a central repository's branch, never the asset's).
- inputs: always the same ten strings, `GITHUB_INPUT_NAMES` (GitHub allows ten; a workflow must
  declare each of them, since GitHub answers 422 to an input the workflow does not declare):
  tenant_id, jit_event_id, execution_id, plan_slug, plan_item_slug, job_name, asset_id,
  asset_name, asset_type, and `steps`, the job's steps [{name, uses, params}] as compact JSON
  (`fromJSON(inputs.steps)` in the workflow).

A missing or malformed owner, repository, installation id or ref, a workflow slug that cannot name
a file, or inputs beyond GitHub's size limit raise `DispatchTargetError`: no retry can fix them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from execution_stream.domain.models import Execution, Step
from execution_stream.domain.timestamps import format_timestamp

# The runner that GitHub Actions is; every other runner is fed through `runner-jobs`.
GITHUB_ACTIONS = "github_actions"
GITHUB_INPUT_NAMES = (
    "tenant_id",
    "jit_event_id",
    "execution_id",
    "plan_slug",
    "plan_item_slug",
    "job_name",
    "asset_id",
    "asset_name",
    "asset_type",
    "steps",
)
MAX_GITHUB_INPUTS = 10
MAX_GITHUB_INPUTS_CHARACTERS = 65_535
DEFAULT_REF = "main"
MAX_REF_LENGTH = 255
# GitHub's own alphabets for logins and repository names; they keep the names safe in a URL path.
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
_REPO = re.compile(r"[A-Za-z0-9._-]{1,100}")
_WORKFLOW_FILE = re.compile(r"[A-Za-z0-9._-]{1,200}\.yml")


class DispatchTargetError(ValueError):
    """The execution does not say, or says badly, where its GitHub workflow is to be dispatched."""


class JobSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    steps: list[Step]
    job_name: str
    workflow_slug: str
    plan_slug: str
    plan_item_slug: str


class AssetContext(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    asset_id: str
    asset_name: str
    asset_type: str
    vendor: str
    owner: str | None = None
    installation_id: str | None = None
    app_id: str | None = None
    user_vendor_id: str | None = None
    user_vendor_name: str | None = None


class StatusReportTarget(BaseModel):
    """Where a runner reports, and under which fields of a report it names its own run (stored on
    the execution, shown by the API)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    topic: str
    key: str
    run_ref_field: Literal["run_ref"] = "run_ref"
    html_url_field: Literal["html_url"] = "html_url"


class DispatchedJob(BaseModel):
    """What a topic-fed runner receives on `runner-jobs` (a `type: "cancel"` record asks it to stop
    one: domain/commands.py)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["job"] = "job"
    tenant_id: str
    jit_event_id: str
    execution_id: str
    job_runner: str
    job: JobSpec
    asset: AssetContext
    additional_attributes: dict[str, Any]
    timeout_seconds: int
    report_status_to: StatusReportTarget
    deadline_at: str
    # 1 for the first dispatch, one more for each retry of a retryable failure.
    attempt: int = 1


@dataclass(frozen=True)
class GithubWorkflowTarget:
    installation_id: str
    owner: str
    repo: str
    workflow_file: str
    ref: str
    inputs: dict[str, str] = field(default_factory=dict)


def build_dispatched_job(
    execution: Execution, status_topic: str, timeout_seconds: int, now: datetime
) -> DispatchedJob:
    """The job `execution` becomes when it is dispatched at `now`."""
    if timeout_seconds < 1:
        raise ValueError(f"timeout_seconds must be at least 1, not {timeout_seconds}")
    return DispatchedJob(
        tenant_id=execution.tenant_id,
        jit_event_id=execution.jit_event_id,
        execution_id=execution.execution_id,
        job_runner=execution.job_runner,
        job=JobSpec(
            steps=[step.model_copy(deep=True) for step in execution.steps],
            job_name=execution.job_name,
            workflow_slug=execution.workflow_slug,
            plan_slug=execution.plan_slug,
            plan_item_slug=execution.plan_item_slug,
        ),
        asset=asset_context(execution),
        additional_attributes=execution.additional_attributes,
        timeout_seconds=timeout_seconds,
        report_status_to=StatusReportTarget(topic=status_topic, key=execution.tenant_id),
        deadline_at=format_timestamp(now + timedelta(seconds=timeout_seconds)),
        attempt=execution.attempt,
    )


def asset_context(execution: Execution) -> AssetContext:
    """The asset as the runner needs it; vendor details that are absent or not text stay None."""
    attributes = execution.additional_attributes
    return AssetContext(
        asset_id=execution.asset_id,
        asset_name=execution.asset_name,
        asset_type=execution.asset_type,
        vendor=execution.vendor,
        owner=_lenient_text(attributes, "owner") or _lenient_text(attributes, "user_vendor_name"),
        installation_id=_lenient_text(attributes, "installation_id"),
        app_id=_lenient_text(attributes, "app_id"),
        user_vendor_id=_lenient_text(attributes, "user_vendor_id"),
        user_vendor_name=_lenient_text(attributes, "user_vendor_name"),
    )


def github_workflow_target(execution: Execution) -> GithubWorkflowTarget:
    """The repository, workflow, ref and inputs that receive `execution` (rule: module docstring)."""
    installation_id = _required(execution, "installation_id")
    if not installation_id.isascii() or not installation_id.isdigit():
        raise _target_error(execution, f"installation_id {installation_id!r} is not a number")
    owner = _text(execution, "owner") or _required(execution, "user_vendor_name", "owner")
    central_repo = _text(execution, "workflow_repository")
    repo = central_repo or _required(execution, "original_repository", "workflow_repository")
    ref = _text(execution, "workflow_ref") or (None if central_repo else _text(execution, "branch"))
    workflow_file = f"{execution.workflow_slug}.yml"
    _check(execution, "owner", owner, _OWNER.fullmatch(owner) is not None)
    _check(execution, "repository", repo, _REPO.fullmatch(repo) is not None and repo not in {".", ".."})
    _check(execution, "workflow file", workflow_file, _WORKFLOW_FILE.fullmatch(workflow_file) is not None)
    ref = ref or DEFAULT_REF
    _check(execution, "ref", ref, len(ref) <= MAX_REF_LENGTH and ref.isprintable() and " " not in ref)
    return GithubWorkflowTarget(
        installation_id=installation_id,
        owner=owner,
        repo=repo,
        workflow_file=workflow_file,
        ref=ref,
        inputs=github_inputs(execution),
    )


def github_inputs(execution: Execution) -> dict[str, str]:
    """The workflow_dispatch inputs: `GITHUB_INPUT_NAMES`, every value a string."""
    steps = [step.model_dump(mode="json") for step in execution.steps]
    inputs = {
        "tenant_id": execution.tenant_id,
        "jit_event_id": execution.jit_event_id,
        "execution_id": execution.execution_id,
        "plan_slug": execution.plan_slug,
        "plan_item_slug": execution.plan_item_slug,
        "job_name": execution.job_name,
        "asset_id": execution.asset_id,
        "asset_name": execution.asset_name,
        "asset_type": execution.asset_type,
        "steps": json.dumps(steps, separators=(",", ":"), sort_keys=True),
    }
    size = sum(len(name) + len(value) for name, value in inputs.items())
    if size > MAX_GITHUB_INPUTS_CHARACTERS:
        raise _target_error(
            execution, f"workflow inputs take {size} characters, over GitHub's {MAX_GITHUB_INPUTS_CHARACTERS}"
        )
    return inputs


def _text(execution: Execution, name: str) -> str | None:
    """An attribute as text: absent or empty is None; a number is its digits; anything else is wrong."""
    value = execution.additional_attributes.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _target_error(execution, f"additional_attributes[{name!r}] must be a string, not {value!r}")
    return str(value)


def _required(execution: Execution, name: str, alternative: str | None = None) -> str:
    value = _text(execution, name)
    if value is None:
        either = f"{alternative!r} or {name!r}" if alternative else repr(name)
        raise _target_error(execution, f"additional_attributes has no {either}")
    return value


def _lenient_text(attributes: dict[str, Any], name: str) -> str | None:
    value = attributes.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return str(value)


def _check(execution: Execution, what: str, value: str, valid: bool) -> None:
    if not valid:
        raise _target_error(execution, f"{what} {value!r} is not a valid GitHub {what}")


def _target_error(execution: Execution, problem: str) -> DispatchTargetError:
    return DispatchTargetError(
        f"cannot dispatch execution {execution.execution_id} of tenant {execution.tenant_id} "
        f"to GitHub Actions: {problem}"
    )
