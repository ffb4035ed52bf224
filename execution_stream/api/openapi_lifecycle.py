"""The parts of the OpenAPI document about an execution's lifecycle: its run at the runner, its
attempts, its cancel, and `POST /executions/{execution_id}/cancel`."""

from __future__ import annotations

from typing import Any

from execution_stream.domain.models import CancelReason, ExecutionStatus

_NULLABLE_STRING = {"type": ["string", "null"]}
_JSON = "application/json"


def lifecycle_properties() -> dict[str, Any]:
    reasons: list[str | None] = [reason.value for reason in CancelReason]
    return {
        "priority": {
            "type": "integer",
            "minimum": 0,
            "maximum": 9,
            "description": "Its priority class, higher admitted first when the tenant is at capacity "
            "(absent: 0).",
        },
        "workflow_run_id": {
            "type": ["integer", "null"],
            "description": "github_actions: the workflow run GitHub created (when GitHub said).",
        },
        "html_url": {**_NULLABLE_STRING, "description": "Where people see the run (GitHub's run page)."},
        "run_ref": {**_NULLABLE_STRING, "description": "A topic-fed runner's own reference of its run."},
        "attempt": {
            "type": "integer",
            "minimum": 1,
            "description": "The current attempt: 1 (absent), plus one per retry of a retryable failure.",
        },
        "attempts": {
            "type": ["array", "null"],
            "items": {"$ref": "#/components/schemas/Attempt"},
            "description": "Every attempt of an execution that was retried, in order (absent otherwise).",
        },
        "cancel_requested_at": {**_NULLABLE_STRING, "description": "When a cancel was asked of its runner."},
        "cancel_reason": {"type": ["string", "null"], "enum": [*reasons, None]},
        "superseded_by": {
            **_NULLABLE_STRING,
            "description": "With cancel_reason 'superseded': the execution that replaced it.",
        },
    }


def attempt_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["number", "status", "ended_at"],
        "properties": {
            "number": {"type": "integer", "minimum": 1},
            "status": {"type": "string", "enum": [status.value for status in ExecutionStatus]},
            "dispatched_at": _NULLABLE_STRING,
            "registered_at": _NULLABLE_STRING,
            "ended_at": {"type": "string"},
            "error": _NULLABLE_STRING,
            "retryable": {"type": "boolean"},
            "workflow_run_id": {"type": ["integer", "null"]},
            "html_url": _NULLABLE_STRING,
            "run_ref": _NULLABLE_STRING,
        },
    }


def cancel_accepted_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["execution_id", "status", "cancel"],
        "properties": {
            "execution_id": {"type": "string"},
            "status": {
                "type": "string",
                "enum": [status.value for status in ExecutionStatus],
                "description": "Its status when the cancel was accepted.",
            },
            "cancel": {"type": "string", "enum": ["requested"]},
        },
    }


def cancel_operation(execution_id: dict[str, Any], error: Any) -> dict[str, Any]:
    accepted = {"content": {_JSON: {"schema": {"$ref": "#/components/schemas/CancelAccepted"}}}}
    return {
        "operationId": "cancelExecution",
        "summary": "Cancel one execution of the caller's tenant",
        "description": (
            "Accepted (202) once the cancel is on the execution-commands topic. A pending execution "
            "leaves its queue and becomes canceled; a dispatched or running one is canceled at its "
            "runner and becomes canceled when the runner confirms, or after the grace period. "
            "Cancelling twice is one cancellation. No request body."
        ),
        "parameters": [execution_id],
        "responses": {
            "202": {"description": "The cancel is accepted", **accepted},
            "400": error("An id that is not 32 lowercase hex characters, or a query parameter"),
            "401": error("Missing, malformed, expired or wrongly signed bearer token"),
            "404": error("No execution of this id in the caller's tenant (code not_found)"),
            "409": error("The execution is already completed, failed or canceled (code already_final)"),
            "500": error("An unexpected error (logged)"),
            "503": error("DynamoDB or Kafka is unavailable; retry later"),
        },
    }
