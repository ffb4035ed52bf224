"""The OpenAPI 3.1 description of the API, served at `GET /openapi.json`."""

from __future__ import annotations

from typing import Any

from execution_stream.api.openapi_lifecycle import (
    attempt_schema,
    cancel_accepted_schema,
    cancel_operation,
    lifecycle_properties,
)
from execution_stream.api.validation import (
    DEFAULT_LIMIT,
    EXECUTION_ID_PATTERN,
    MAX_LIMIT,
    MAX_PLAN_ITEM_SLUG_LENGTH,
    MIN_LIMIT,
)
from execution_stream.domain.models import ExecutionStatus
from execution_stream.domain.waiting import WaitingReason

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
# Cc (control) characters and the key separator '#' are refused in a plan item slug.
SLUG_PATTERN = "^[^#\\u0000-\\u001f\\u007f-\\u009f]+$"

_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_NULLABLE_INTEGER = {"type": ["integer", "null"]}
_JSON = "application/json"
_WAITING = (
    "Pending executions only (absent on others). 'asset': the trigger waits for its asset "
    "(asset_name, asset_type and vendor are empty until it arrives); 'capacity': the tenant is at "
    "its limit for this runner and the execution waits in the runner's queue; null: not known to "
    "wait (admitted and being dispatched, or no queue snapshot yet)."
)
_POSITION = (
    "With waiting_reason 'capacity': 1 is the next execution to be admitted; else null. It counts "
    "the executions of higher priority classes waiting, then those of its own class ahead of it. "
    "An estimate: at most ~1 s behind the worker, aging may reorder classes, and executions "
    "cancelled while waiting ahead are counted until the head of the queue passes them."
)
_CAPACITY_ONLY = "With waiting_reason 'capacity' only (at most ~1 s behind the worker): "


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref("Error")}}}


def _execution_schema() -> dict[str, Any]:
    strings = [
        *("PK", "SK"),
        *(f"GSI{n}{part}" for n in range(1, 5) for part in ("PK", "SK")),
        *("tenant_id", "jit_event_id", "execution_id", "jit_event_name", "asset_id"),
        *("asset_name", "asset_type", "vendor", "plan_slug", "plan_item_slug", "workflow_slug"),
        *("job_name", "job_runner", "control_name", "control_image", "entity_type", "created_at"),
    ]
    later = ("registered", "dispatched", "completed")
    properties: dict[str, Any] = dict.fromkeys(strings, _STRING)
    properties.update({f"{name}_at": _NULLABLE_STRING for name in later})
    properties.update({f"{name}_at_ts": _NULLABLE_INTEGER for name in later})
    properties["error"] = _NULLABLE_STRING
    properties.update(_waiting_properties())
    properties.update(lifecycle_properties())
    properties.update(
        status={"type": "string", "enum": [status.value for status in ExecutionStatus]},
        has_findings={"type": "boolean"},
        created_at_ts={"type": "integer"},
        steps={"type": "array", "items": _ref("Step")},
        additional_attributes={"type": "object", "additionalProperties": True},
    )
    return {
        "type": "object",
        "description": (
            "One execution, shaped as the stored item (the seed's example), key attributes "
            "(PK, SK, GSI1PK..GSI4SK, and GSI5PK on items stored since it exists) included; the "
            "worker's queue bookkeeping (waiting_for_asset, queue_index, queue_priority) is shown "
            "as waiting_reason and queue_position instead. Timestamps are UTC, "
            "'YYYY-MM-DDTHH:MM:SS.ffffff' without offset; *_ts are Unix epoch seconds."
        ),
        "required": [
            *strings,
            *("status", "has_findings", "created_at_ts", "steps", "additional_attributes"),
        ],
        "properties": properties,
        "additionalProperties": True,
    }


def _waiting_properties() -> dict[str, Any]:
    reasons: list[str | None] = [reason.value for reason in WaitingReason]
    figures = {
        "limit": "the executions the tenant may run at once on this runner",
        "in_use": "the slots in use",
    }
    return {
        "GSI5PK": {"type": "string", "description": "TENANT#<tenant_id>#EXECUTION#<execution_id>"},
        "waiting_reason": {"type": ["string", "null"], "enum": [*reasons, None], "description": _WAITING},
        "queue_position": {"type": ["integer", "null"], "minimum": 1, "description": _POSITION},
        **{
            name: {"type": "integer", "minimum": 0, "description": f"{_CAPACITY_ONLY}{text}."}
            for name, text in figures.items()
        },
    }


def _schemas() -> dict[str, Any]:
    return {
        "Execution": _execution_schema(),
        "Attempt": attempt_schema(),
        "CancelAccepted": cancel_accepted_schema(),
        "Step": {
            "type": "object",
            "required": ["name", "uses", "params"],
            "properties": {
                "name": _STRING,
                "uses": _STRING,
                "params": {"type": "object", "additionalProperties": True},
            },
        },
        "ExecutionPage": {
            "type": "object",
            "required": ["data", "metadata"],
            "properties": {
                "data": {"type": "array", "items": _ref("Execution")},
                "metadata": {
                    "type": "object",
                    "required": ["count", "after"],
                    "properties": {
                        "count": {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT},
                        "after": {
                            "type": ["string", "null"],
                            "description": "Opaque cursor of the next page (pass it as `after` "
                            "with the same filter and token); null on the last page.",
                        },
                    },
                },
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {
                            "type": "string",
                            "description": "Stable and machine-readable, e.g. invalid_limit.",
                        },
                        "message": {"type": "string", "description": "Names the problem."},
                    },
                }
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"type": "string", "enum": ["ok"]}},
        },
    }


def _list_parameters() -> list[dict[str, Any]]:
    return [
        {
            "name": "status",
            "in": "query",
            "required": False,
            "description": "Only executions in this status (DynamoDB GSI2, or GSI4 with a slug).",
            "schema": {"type": "string", "enum": [status.value for status in ExecutionStatus]},
        },
        {
            "name": "plan_item_slug",
            "in": "query",
            "required": False,
            "description": "Only executions of this plan item (GSI3, or GSI4 with a status).",
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_PLAN_ITEM_SLUG_LENGTH,
                "pattern": SLUG_PATTERN,
            },
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": "Page size.",
            "schema": {
                "type": "integer",
                "minimum": MIN_LIMIT,
                "maximum": MAX_LIMIT,
                "default": DEFAULT_LIMIT,
            },
        },
        {
            "name": "after",
            "in": "query",
            "required": False,
            "description": "metadata.after of the previous page; bound to the tenant and filter.",
            "schema": {"type": "string", "minLength": 1},
        },
    ]


def _execution_id_parameter() -> dict[str, Any]:
    return {
        "name": "execution_id",
        "in": "path",
        "required": True,
        "description": "The execution's id: 32 lowercase hexadecimal characters.",
        "schema": {"type": "string", "pattern": EXECUTION_ID_PATTERN},
    }


def _get_execution_operation() -> dict[str, Any]:
    return {
        "operationId": "getExecution",
        "summary": "One execution of the caller's tenant",
        "description": "The tenant is the token's tenant claim: another tenant's execution is a "
        "404, as an unknown id is. No query parameter is accepted. Read from an index: an "
        "execution stored a moment ago may take up to about a second to be found.",
        "parameters": [_execution_id_parameter()],
        "responses": {
            "200": {"description": "The execution", "content": {_JSON: {"schema": _ref("Execution")}}},
            "400": _error("An id that is not 32 lowercase hex characters, or a query parameter"),
            "401": _error("Missing, malformed, expired or wrongly signed bearer token"),
            "404": _error("No execution of this id in the caller's tenant (code not_found)"),
            "500": _error("An unexpected error (logged)"),
            "503": _error("DynamoDB is unavailable; retry later"),
        },
    }


def _health_operation(summary: str, unavailable: bool) -> dict[str, Any]:
    health = {"content": {_JSON: {"schema": _ref("Health")}}}
    responses: dict[str, Any] = {"200": {"description": "OK", **health}}
    if unavailable:
        responses["503"] = _error("DynamoDB is not reachable (code not_ready)")
    return {"summary": summary, "security": [], "responses": responses}


def _paths() -> dict[str, Any]:
    page = {"content": {_JSON: {"schema": _ref("ExecutionPage")}}}
    return {
        "/executions": {
            "get": {
                "operationId": "listExecutions",
                "summary": "The caller's tenant's executions, newest first",
                "description": "The tenant is the token's tenant claim, never a query parameter; "
                "any parameter not listed here is refused with 400.",
                "parameters": _list_parameters(),
                "responses": {
                    "200": {"description": "One page of executions", **page},
                    "400": _error("A bad filter, limit, cursor, or an unknown parameter"),
                    "401": _error("Missing, malformed, expired or wrongly signed bearer token"),
                    "500": _error("An unexpected error (logged)"),
                    "503": _error("DynamoDB is unavailable; retry later"),
                },
            }
        },
        "/executions/{execution_id}": {"get": _get_execution_operation()},
        "/executions/{execution_id}/cancel": {"post": cancel_operation(_execution_id_parameter(), _error)},
        "/healthz": {"get": _health_operation("The process is up", unavailable=False)},
        "/readyz": {"get": _health_operation("DynamoDB is reachable", unavailable=True)},
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {_JSON: {"schema": {}}}}},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics: requests and their latency per route and status",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Prometheus' text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Execution service",
            "version": API_VERSION,
            "description": "Executions of a tenant for the web view (jit-auth: bearer JWT).",
        },
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{"bearerAuth": []}],
    }
