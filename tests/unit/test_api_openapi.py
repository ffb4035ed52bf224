"""The OpenAPI document is valid OpenAPI 3.1 and describes what the app really serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from execution_stream.api.app import build_api
from execution_stream.api.openapi import openapi_document
from execution_stream.api.validation import (
    ALLOWED_PARAMETERS,
    DEFAULT_LIMIT,
    EXECUTION_ID_PATTERN,
    MAX_LIMIT,
)
from execution_stream.domain.models import ExecutionStatus
from tests.support.api import hs256_settings
from tests.support.fake_store import FakeStore

SEED_ITEM = Path(__file__).parent / "golden" / "seed_example_item.json"


def schema_of(name: str) -> OAS31Validator:
    document = openapi_document()
    return OAS31Validator({"$ref": f"#/components/schemas/{name}", **document})


def test_document_is_valid_openapi() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_document_survives_json() -> None:
    document = openapi_document()
    assert json.loads(json.dumps(document)) == document


def test_every_route_is_described_and_nothing_else() -> None:
    app = build_api(hs256_settings(), FakeStore())
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    described = {
        (method, path) for path, operations in openapi_document()["paths"].items() for method in operations
    }
    assert served == described


def test_list_parameters_match_the_validation() -> None:
    operation = openapi_document()["paths"]["/executions"]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert tuple(parameters) == ALLOWED_PARAMETERS
    assert parameters["status"]["schema"]["enum"] == [s.value for s in ExecutionStatus]
    limit = parameters["limit"]["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, MAX_LIMIT, DEFAULT_LIMIT)
    assert {"200", "400", "401", "500", "503"} <= set(operation["responses"])
    assert openapi_document()["security"] == [{"bearerAuth": []}]


def test_seed_example_item_is_a_valid_execution() -> None:
    schema_of("Execution").validate(json.loads(SEED_ITEM.read_text()))


@pytest.mark.parametrize(
    "change",
    [
        {"status": "done"},
        {"has_findings": "no"},
        {"steps": [{"name": "x"}]},
        {"created_at_ts": "1650789018"},
        {"PK": None},
    ],
)
def test_an_item_of_another_shape_is_not_an_execution(change: dict[str, Any]) -> None:
    item = json.loads(SEED_ITEM.read_text()) | change
    assert not schema_of("Execution").is_valid(item)


def test_error_schema_requires_code_and_message() -> None:
    schema_of("Error").validate({"error": {"code": "invalid_limit", "message": "limit ..."}})
    assert not schema_of("Error").is_valid({"error": {"code": "invalid_limit"}})


def test_get_execution_is_described_with_its_id_and_404() -> None:
    operation = openapi_document()["paths"]["/executions/{execution_id}"]["get"]
    (parameter,) = operation["parameters"]
    assert (parameter["name"], parameter["in"], parameter["required"]) == ("execution_id", "path", True)
    assert parameter["schema"]["pattern"] == EXECUTION_ID_PATTERN
    assert {"200", "400", "401", "404", "500", "503"} <= set(operation["responses"])


@pytest.mark.parametrize(
    ("waiting", "valid"),
    [
        ({"waiting_reason": "capacity", "queue_position": 2, "limit": 3, "in_use": 3}, True),
        ({"waiting_reason": "asset", "queue_position": None}, True),
        ({"waiting_reason": None, "queue_position": None}, True),
        ({"waiting_reason": "busy", "queue_position": None}, False),
        ({"waiting_reason": "capacity", "queue_position": 0}, False),
        ({"waiting_reason": "capacity", "queue_position": "1"}, False),
    ],
)
def test_the_waiting_fields_are_described(waiting: dict[str, Any], valid: bool) -> None:
    item = json.loads(SEED_ITEM.read_text()) | {"status": "pending"} | waiting
    assert schema_of("Execution").is_valid(item) is valid
