"""Paging cursors: signed, bound to tenant and filter; everything else is a 400."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from pydantic import SecretStr

from execution_stream.adapters import dynamodb_keys as keys
from execution_stream.api.cursors import (
    MAX_CURSOR_LENGTH,
    CursorCodec,
    CursorConfigurationError,
    cursor_key,
)
from execution_stream.api.errors import InvalidCursorError
from execution_stream.api.validation import ExecutionFilter
from execution_stream.domain.models import ExecutionStatus
from execution_stream.settings import Settings
from tests.support.api import CURSOR_SECRET, SECRET, rsa_pem_pair

KEY = CURSOR_SECRET.encode()
ALL = ExecutionFilter()
COMPLETED_BANDIT = ExecutionFilter(ExecutionStatus.COMPLETED, "item-bandit")


def page_key(tenant_id: str, execution_filter: ExecutionFilter) -> dict[str, str]:
    index = keys.index_for_filter(tenant_id, execution_filter.status, execution_filter.plan_item_slug)
    return {
        keys.PK: keys.partition_key(tenant_id),
        keys.SK: keys.sort_key("event-1", "run-1"),
        index.partition_key_name: index.partition_key_value,
        index.sort_key_name: "2026-01-01T00:00:00.000000",
    }


def refused(cursor: str, tenant_id: str = "tenant-a", execution_filter: ExecutionFilter = ALL) -> str:
    with pytest.raises(InvalidCursorError) as caught:
        CursorCodec(KEY).decode(cursor, tenant_id, execution_filter)
    assert caught.value.status == 400
    assert caught.value.code == "invalid_cursor"
    return caught.value.message


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(payload: Any, key: bytes = KEY) -> str:
    body = _b64(json.dumps(payload).encode())
    return f"{body}.{_b64(hmac.new(key, body.encode(), hashlib.sha256).digest())}"


@pytest.mark.parametrize(
    "execution_filter",
    [
        ALL,
        ExecutionFilter(status=ExecutionStatus.PENDING),
        ExecutionFilter(plan_item_slug="item-bandit"),
        COMPLETED_BANDIT,
    ],
)
def test_round_trip(execution_filter: ExecutionFilter) -> None:
    codec = CursorCodec(KEY)
    start = page_key("tenant-a", execution_filter)
    cursor = codec.encode(start, "tenant-a", execution_filter)
    assert codec.decode(cursor, "tenant-a", execution_filter) == start


def test_cursor_is_url_safe_and_opaque() -> None:
    cursor = CursorCodec(KEY).encode(page_key("tenant-a", ALL), "tenant-a", ALL)
    assert all(c.isalnum() or c in "-_." for c in cursor)
    assert "tenant-a" not in cursor  # not plain text (it is encoded, not encrypted)


def test_tampered_payload_is_refused() -> None:
    cursor = CursorCodec(KEY).encode(page_key("tenant-a", ALL), "tenant-a", ALL)
    body, signature = cursor.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["key"][keys.SK] = keys.sort_key("event-9", "run-9")
    forged = f"{_b64(json.dumps(payload).encode())}.{signature}"
    assert "signature does not match" in refused(forged)


@pytest.mark.parametrize("position", [0, 10, -2, -1])
def test_any_changed_character_is_refused(position: int) -> None:
    cursor = CursorCodec(KEY).encode(page_key("tenant-a", ALL), "tenant-a", ALL)
    index = position % len(cursor)
    for replacement in "ABQw_-":
        if replacement != cursor[index]:
            changed = cursor[:index] + replacement + cursor[index + 1 :]
            assert "signature does not match" in refused(changed)


def test_cursor_signed_with_another_key_is_refused() -> None:
    cursor = CursorCodec(b"another-key").encode(page_key("tenant-a", ALL), "tenant-a", ALL)
    assert "signature does not match" in refused(cursor)


def test_other_tenants_cursor_is_refused() -> None:
    cursor = CursorCodec(KEY).encode(page_key("tenant-a", ALL), "tenant-a", ALL)
    assert refused(cursor, tenant_id="tenant-b") == "invalid 'after' cursor: it belongs to another tenant"


@pytest.mark.parametrize(
    "other",
    [
        ExecutionFilter(status=ExecutionStatus.COMPLETED),
        ExecutionFilter(plan_item_slug="item-bandit"),
        ExecutionFilter(ExecutionStatus.FAILED, "item-bandit"),
        ExecutionFilter(ExecutionStatus.COMPLETED, "item-semgrep"),
        ALL,
    ],
)
def test_cursor_for_another_filter_is_refused(other: ExecutionFilter) -> None:
    cursor = CursorCodec(KEY).encode(page_key("tenant-a", COMPLETED_BANDIT), "tenant-a", COMPLETED_BANDIT)
    assert "issued for another filter" in refused(cursor, execution_filter=other)


@pytest.mark.parametrize(
    "garbage",
    ["x", "abc", "abc.", ".abc", "a.b.c", "!!!.???", "héllo.wörld", "a" * (MAX_CURSOR_LENGTH + 1)],
)
def test_garbage_is_refused(garbage: str) -> None:
    refused(garbage)


@pytest.mark.parametrize(
    "payload",
    [
        [1, 2],
        "text",
        {"v": 2, "tenant": "tenant-a", "status": None, "plan_item_slug": None, "key": {}},
        {"v": 1, "tenant": 7, "status": None, "plan_item_slug": None, "key": {}},
        {"v": 1, "tenant": "tenant-a", "status": "done", "plan_item_slug": None, "key": {}},
        {"v": 1, "tenant": "tenant-a", "status": None, "plan_item_slug": 3, "key": {}},
        {"v": 1, "tenant": "tenant-a", "status": None, "plan_item_slug": None, "key": {"PK": 1}},
        {"v": 1, "tenant": "tenant-a", "status": None, "plan_item_slug": None, "key": []},
    ],
)
def test_signed_but_malformed_content_is_refused(payload: Any) -> None:
    assert "content is malformed" in refused(signed(payload))


def test_signed_non_json_is_refused() -> None:
    body = _b64(b"\xff\xfe not json")
    cursor = f"{body}.{_b64(hmac.new(KEY, body.encode(), hashlib.sha256).digest())}"
    assert "content is malformed" in refused(cursor)


@pytest.mark.parametrize(
    "start",
    [
        {},
        {keys.PK: "TENANT#tenant-b", keys.SK: "x", "GSI1PK": "TENANT#tenant-b", "GSI1SK": "t"},
        {
            keys.PK: "TENANT#tenant-a",
            keys.SK: "x",
            "GSI2PK": "TENANT#tenant-a#STATUS#failed",
            "GSI2SK": "t",
        },
        {keys.PK: "TENANT#tenant-a", keys.SK: "", "GSI1PK": "TENANT#tenant-a", "GSI1SK": "t"},
        {keys.PK: "TENANT#tenant-a", keys.SK: "x", "GSI1PK": "TENANT#tenant-a"},
    ],
)
def test_a_forged_start_key_outside_the_query_is_refused(start: dict[str, str]) -> None:
    """Even with the key (e.g. derived from a public key), a cursor cannot leave the partition."""
    payload = {"v": 1, "tenant": "tenant-a", "status": None, "plan_item_slug": None, "key": start}
    assert "does not fit this query" in refused(signed(payload))


def test_cursor_secret_is_used_when_set() -> None:
    settings = Settings(cursor_secret=SecretStr(CURSOR_SECRET), jwt_secret=SecretStr(SECRET))
    assert cursor_key(settings) == CURSOR_SECRET.encode()


def test_key_is_derived_from_a_jwt_key_and_differs_from_it() -> None:
    from_secret = cursor_key(Settings(jwt_secret=SecretStr(SECRET)))
    from_public = cursor_key(Settings(jwt_public_key=SecretStr(rsa_pem_pair()[1])))
    assert len(from_secret) == 32
    assert from_secret != SECRET.encode()
    assert from_secret != from_public
    assert cursor_key(Settings(jwt_secret=SecretStr(SECRET))) == from_secret  # stable


def test_no_key_at_all_is_a_configuration_error() -> None:
    with pytest.raises(CursorConfigurationError):
        cursor_key(Settings(jwt_secret=None, jwt_public_key=None, cursor_secret=None))
