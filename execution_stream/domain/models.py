"""The records of the Execution service (pydantic v2; JSON on the wire)."""

import json
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from execution_stream.domain.timestamps import as_utc
from execution_stream.domain.trace import CarriesTrace

MAX_IDENTIFIER_LENGTH = 256
MAX_NAME_LENGTH = 256
MAX_STEP_USES_LENGTH = 1024
MAX_ERROR_LENGTH = 4096
KEY_SEPARATOR = "#"
EARLIEST_CREATED_AT = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CREATED_AT_AHEAD = timedelta(hours=1)
MAX_URL_LENGTH = 2048
MIN_PRIORITY, MAX_PRIORITY = 0, 9


class ExecutionStatus(StrEnum):
    PENDING = "pending"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


# The field holding the moment an execution entered each status.
STATUS_TIME_FIELD: Mapping[ExecutionStatus, str] = MappingProxyType(
    {
        ExecutionStatus.PENDING: "created_at",
        ExecutionStatus.DISPATCHED: "dispatched_at",
        ExecutionStatus.RUNNING: "registered_at",
        ExecutionStatus.COMPLETED: "completed_at",
        ExecutionStatus.FAILED: "completed_at",
        ExecutionStatus.CANCELED: "completed_at",
    }
)


def _reject_control_characters(value: str) -> str:
    if any(unicodedata.category(character) == "Cc" for character in value):
        raise ValueError("must not contain control characters")
    return value


def _reject_key_separator(value: str) -> str:
    if KEY_SEPARATOR in value:
        raise ValueError(f"must not contain {KEY_SEPARATOR!r}, which separates DynamoDB key parts")
    return value


def _truncate_error(value: str) -> str:
    # A runner's long traceback must not cost us its status update: keep the head of it.
    return value[:MAX_ERROR_LENGTH]


Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_IDENTIFIER_LENGTH),
    AfterValidator(_reject_control_characters),
    AfterValidator(_reject_key_separator),
]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH),
    AfterValidator(_reject_control_characters),
]
StepUses = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_STEP_USES_LENGTH),
    AfterValidator(_reject_control_characters),
]
ErrorText = Annotated[str, AfterValidator(_truncate_error)]


class CancelReason(StrEnum):
    REQUESTED = "requested"  # by a user (the API) or a service (execution-commands)
    SUPERSEDED = "superseded"  # by a newer trigger of the same tenant, asset, plan item and job


class Attempt(BaseModel):
    """One dispatch of an execution that was retried, as it ended."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    number: int
    status: ExecutionStatus
    dispatched_at: str | None = None
    registered_at: str | None = None
    ended_at: str
    error: str | None = None
    retryable: bool = False
    workflow_run_id: int | None = None
    html_url: str | None = None
    run_ref: str | None = None


class Step(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Name
    uses: StepUses
    params: dict[str, Any] = Field(default_factory=dict)


class TriggerEvent(BaseModel):
    """One job for one asset, as published by the trigger service."""

    model_config = ConfigDict(extra="ignore")

    tenant_id: Identifier
    jit_event_id: Identifier
    jit_event_name: Name
    asset_id: Identifier
    plan_slug: Identifier
    plan_item_slug: Identifier
    workflow_slug: Identifier
    job_name: Name
    steps: Annotated[list[Step], Field(min_length=1)]
    job_runner: Name
    additional_attributes: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    # 0-9, higher admitted first; without it, the class its jit_event_name is given by the settings.
    priority: int | None = Field(default=None, ge=MIN_PRIORITY, le=MAX_PRIORITY)

    @field_validator("created_at")
    @classmethod
    def _created_at_is_plausible(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        moment = as_utc(value)
        if moment < EARLIEST_CREATED_AT:
            raise ValueError(f"must not be before {EARLIEST_CREATED_AT.isoformat()}")
        latest = datetime.now(UTC) + MAX_CREATED_AT_AHEAD
        if moment > latest:
            raise ValueError(f"must not be more than {MAX_CREATED_AT_AHEAD} in the future")
        return moment

    @model_validator(mode="after")
    def _free_form_parts_are_plain_json(self) -> "TriggerEvent":
        # Kept verbatim, these go to Kafka as JSON and to DynamoDB: NaN, Infinity and lone
        # surrogates (valid in Python, not in JSON or UTF-8) would fail there, far from here.
        parts = {"additional_attributes": self.additional_attributes}
        parts.update({f"steps.{n}.params": step.params for n, step in enumerate(self.steps)})
        for where, value in parts.items():
            try:
                json.dumps(value, allow_nan=False, ensure_ascii=False).encode()
            except (ValueError, TypeError):
                raise ValueError(
                    f"{where} must be plain JSON: no NaN or Infinity, no lone surrogate"
                ) from None
        return self


class Asset(BaseModel):
    """A flat asset record; the asset service may add fields we do not know."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    asset_id: Identifier
    tenant_id: Identifier
    asset_name: str
    asset_type: str
    vendor: str
    owner: str
    installation_id: str | None = None
    app_id: str | None = None
    user_vendor_id: str | None = None
    user_vendor_name: str | None = None


class Execution(CarriesTrace):
    """One job run for one asset: the seed's example item without its key attributes."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    tenant_id: str
    jit_event_id: str
    execution_id: str
    jit_event_name: str
    asset_id: str
    asset_name: str
    asset_type: str
    vendor: str
    plan_slug: str
    plan_item_slug: str
    workflow_slug: str
    job_name: str
    job_runner: str
    steps: list[Step]
    additional_attributes: dict[str, Any]
    control_name: str
    control_image: str
    entity_type: str = "job"
    status: ExecutionStatus
    has_findings: bool = False
    created_at: str
    created_at_ts: int
    registered_at: str | None = None
    registered_at_ts: int | None = None
    dispatched_at: str | None = None
    dispatched_at_ts: int | None = None
    completed_at: str | None = None
    completed_at_ts: int | None = None
    error: str | None = None
    priority: int = 0
    # The job's run at its runner: GitHub's workflow run, or the reference a topic-fed runner reports.
    workflow_run_id: int | None = None
    html_url: str | None = None
    run_ref: str | None = None
    # 1 for the first dispatch; a retry of a retryable failure adds one. `attempts` lists every
    # attempt of an execution that was retried (none for one that ran once).
    attempt: int = 1
    attempts: list[Attempt] | None = None
    cancel_requested_at: str | None = None
    cancel_reason: CancelReason | None = None
    superseded_by: str | None = None
    # Set once at dispatch: the runner, the watchdog and the slot's lease all go by it.
    deadline_at: str | None = None
    # While the trigger waits for its asset: that asset's id (asset_name, asset_type, vendor are "").
    waiting_for_asset: str | None = None
    # Where the execution entered its runner's queue when it had to wait for capacity.
    queue_index: int | None = None
    queue_priority: int | None = None

    @property
    def status_changed_at(self) -> str:
        """When the execution entered its current status (created_at if that was not recorded)."""
        changed_at = getattr(self, STATUS_TIME_FIELD[self.status])
        return changed_at if isinstance(changed_at, str) else self.created_at


class ExecutionStatusUpdate(BaseModel):
    """A runner's report of a status change."""

    model_config = ConfigDict(extra="ignore")

    tenant_id: Identifier
    jit_event_id: Identifier
    execution_id: Identifier
    status: ExecutionStatus
    has_findings: bool = False
    error: ErrorText | None = None
    at: datetime
    # With `failed`: an infrastructure failure (the runner died, a timeout before the job started),
    # dispatched again up to the service's max attempts.
    retryable: bool = False
    attempt: int | None = Field(default=None, ge=1)
    # The runner's own reference of its run, and where people see it.
    run_ref: Identifier | None = None
    html_url: Annotated[str, StringConstraints(max_length=MAX_URL_LENGTH)] | None = None

    @field_validator("at")
    @classmethod
    def _at_is_utc(cls, value: datetime) -> datetime:
        return as_utc(value)


class ExecutionEvent(BaseModel):
    """What we publish on every status change."""

    tenant_id: str
    jit_event_id: str
    execution_id: str
    plan_item_slug: str
    job_runner: str
    status: ExecutionStatus
    previous_status: ExecutionStatus | None
    has_findings: bool
    error: str | None
    at: str
    created_at: str | None = None
    attempt: int = 1
    workflow_run_id: int | None = None
    html_url: str | None = None
    run_ref: str | None = None
    cancel_reason: CancelReason | None = None
    superseded_by: str | None = None

    @classmethod
    def from_change(cls, execution: Execution, previous_status: ExecutionStatus | None) -> "ExecutionEvent":
        return cls(
            tenant_id=execution.tenant_id,
            jit_event_id=execution.jit_event_id,
            execution_id=execution.execution_id,
            plan_item_slug=execution.plan_item_slug,
            job_runner=execution.job_runner,
            status=execution.status,
            previous_status=previous_status,
            has_findings=execution.has_findings,
            error=execution.error,
            at=execution.status_changed_at,
            created_at=execution.created_at,
            attempt=execution.attempt,
            workflow_run_id=execution.workflow_run_id,
            html_url=execution.html_url,
            run_ref=execution.run_ref,
            cancel_reason=execution.cancel_reason,
            superseded_by=execution.superseded_by,
        )
