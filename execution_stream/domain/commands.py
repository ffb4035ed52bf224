"""What services and the API ask of an execution (`execution-commands`), and what a topic-fed runner
is told to stop (`runner-jobs`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from execution_stream.domain.models import CancelReason, Identifier


class CommandsUnavailableError(Exception):
    """A command could not be handed over now (its topic's broker is away): try again later."""


class CancelCommand(BaseModel):
    """Cancel one execution of a tenant: a pending one leaves its queue, a dispatched or running one
    is canceled at its runner. Keyed by tenant_id; `jit_event_id` saves a lookup when given."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["cancel"] = "cancel"
    tenant_id: Identifier
    execution_id: Identifier
    jit_event_id: Identifier | None = None
    reason: CancelReason = CancelReason.REQUESTED
    superseded_by: Identifier | None = None
    requested_at: datetime | None = None


class RunnerCancel(BaseModel):
    """On `runner-jobs`, next to the jobs (`type: "job"`): stop the job of this execution, then
    report `canceled` to the status topic as for any other status."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["cancel"] = "cancel"
    tenant_id: str
    jit_event_id: str
    execution_id: str
    job_runner: str
    attempt: int
    run_ref: str | None
    reason: CancelReason
    requested_at: str
    confirm_by: str
