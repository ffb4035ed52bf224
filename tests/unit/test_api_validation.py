"""The query parameters of GET /executions: each bad one is a 400 that names the problem."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from execution_stream.api.errors import InvalidParameterError
from execution_stream.api.validation import (
    DEFAULT_LIMIT,
    ExecutionFilter,
    ListParameters,
    parse_list_parameters,
)
from execution_stream.domain.models import ExecutionStatus


def parse(*pairs: tuple[str, str]) -> ListParameters:
    return parse_list_parameters(MultiDict(pairs))


def refused(*pairs: tuple[str, str]) -> InvalidParameterError:
    with pytest.raises(InvalidParameterError) as caught:
        parse(*pairs)
    assert caught.value.status == 400
    return caught.value


def test_no_parameters_means_all_executions_default_limit() -> None:
    assert parse() == ListParameters(ExecutionFilter(), DEFAULT_LIMIT, None)
    assert DEFAULT_LIMIT == 20


def test_every_parameter_is_read() -> None:
    parameters = parse(
        ("status", "completed"), ("plan_item_slug", "item-x"), ("limit", "7"), ("after", "c.s")
    )
    assert parameters == ListParameters(ExecutionFilter(ExecutionStatus.COMPLETED, "item-x"), 7, "c.s")


@pytest.mark.parametrize("status", list(ExecutionStatus))
def test_every_lifecycle_status_is_accepted(status: ExecutionStatus) -> None:
    assert parse(("status", status.value)).filter.status is status


@pytest.mark.parametrize("status", ["done", "", "COMPLETED", "completed ", "pending,failed"])
def test_status_outside_the_lifecycle_is_refused(status: str) -> None:
    error = refused(("status", status))
    assert error.code == "invalid_status"
    assert error.message.startswith(f"status {status!r} is not one of: pending, dispatched")


@pytest.mark.parametrize("limit", ["1", "20", "100", "007"])
def test_limit_in_range_is_accepted(limit: str) -> None:
    assert parse(("limit", limit)).limit == int(limit)


@pytest.mark.parametrize(
    "limit", ["0", "101", "-1", "abc", "", "1.5", "+5", " 5", "1e2", "٣", "99999999999999999999"]
)
def test_limit_outside_1_to_100_is_refused(limit: str) -> None:
    error = refused(("limit", limit))
    assert error.code == "invalid_limit"
    assert error.message.startswith("limit must be an integer from 1 to 100, got ")


@pytest.mark.parametrize(
    ("slug", "problem"),
    [
        ("", "must not be empty"),
        ("x" * 257, "at most 256 characters"),
        ("item#x", "must not contain '#'"),
        ("item\nx", "control characters"),
        ("item\x00x", "control characters"),
        ("item\x85x", "control characters"),
        ("item\ud800x", "lone surrogates"),
    ],
)
def test_bad_plan_item_slug_is_refused(slug: str, problem: str) -> None:
    error = refused(("plan_item_slug", slug))
    assert error.code == "invalid_plan_item_slug"
    assert error.message.startswith("plan_item_slug ")
    assert problem in error.message


def test_plan_item_slug_of_256_characters_and_unicode_is_accepted() -> None:
    assert parse(("plan_item_slug", "x" * 256)).filter.plan_item_slug == "x" * 256
    assert parse(("plan_item_slug", "élément-ü")).filter.plan_item_slug == "élément-ü"


def test_empty_cursor_is_refused() -> None:
    error = refused(("after", ""))
    assert error.code == "invalid_cursor"
    assert "after must not be empty" in error.message


def test_tenant_id_is_never_a_query_parameter() -> None:
    error = refused(("tenant_id", "tenant-b"))
    assert error.code == "unknown_parameter"
    assert "'tenant_id'" in error.message
    assert "taken from the token" in error.message


@pytest.mark.parametrize("name", ["Status", "offset", "", "limit ", "x" * 500])
def test_unknown_parameter_is_refused(name: str) -> None:
    error = refused((name, "1"))
    assert error.code == "unknown_parameter"
    assert error.message.startswith("unknown query parameter ")
    assert "allowed: status, plan_item_slug, limit, after" in error.message
    assert len(error.message) < 300


@pytest.mark.parametrize("name", ["status", "plan_item_slug", "limit", "after"])
def test_repeated_parameter_is_refused(name: str) -> None:
    value = {"status": "pending", "plan_item_slug": "a", "limit": "5", "after": "c"}[name]
    error = refused((name, value), (name, value))
    assert error.code == "repeated_parameter"
    assert f"{name!r} is given more than once" in error.message


def test_unknown_parameters_are_reported_before_bad_values() -> None:
    assert refused(("status", "nope"), ("tenant_id", "t")).code == "unknown_parameter"
