"""Opaque paging cursors, signed and bound to the tenant and the filter they were issued for.

A cursor is `base64url(JSON payload) "." base64url(HMAC-SHA256(payload))`. The payload holds
DynamoDB's LastEvaluatedKey (as plain strings), the tenant and the filter; a cursor that was not
signed with our key, or that is replayed by another tenant or with another filter, is refused.

The key is `cursor_secret`; when it is unset, it is derived (HMAC-SHA256 over a fixed label) from
`jwt_secret`, else from `jwt_public_key`. A key derived from a *public* key is public too, so a
caller could forge a cursor: set `cursor_secret` in that deployment. Even a forged cursor cannot
cross tenants, because its start key must lie in the partition of the caller's own query.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from execution_stream.adapters import dynamodb_keys as keys
from execution_stream.api.errors import InvalidCursorError
from execution_stream.api.validation import ExecutionFilter
from execution_stream.domain.models import ExecutionStatus
from execution_stream.domain.store import InvalidPageKeyError, PageKey
from execution_stream.settings import Settings

CURSOR_VERSION = 1
MAX_CURSOR_LENGTH = 4096
_KEY_DERIVATION_LABEL = b"execution-stream/paging-cursor/v1"
_BASE64URL = re.compile(r"[A-Za-z0-9_\-]+")


class CursorConfigurationError(ValueError):
    """No secret to sign cursors with."""


def cursor_key(settings: Settings) -> bytes:
    if settings.cursor_secret is not None and settings.cursor_secret.get_secret_value():
        return settings.cursor_secret.get_secret_value().encode()
    for material in (settings.jwt_secret, settings.jwt_public_key):
        if material is not None and material.get_secret_value():
            secret = material.get_secret_value().encode()
            return hmac.new(secret, _KEY_DERIVATION_LABEL, hashlib.sha256).digest()
    raise CursorConfigurationError("set EXECUTION_STREAM_CURSOR_SECRET (or a JWT key)")


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        if not key:
            raise CursorConfigurationError("the cursor key must not be empty")
        self._key = key

    def encode(self, page_key: PageKey, tenant_id: str, execution_filter: ExecutionFilter) -> str:
        payload = {
            "v": CURSOR_VERSION,
            "tenant": tenant_id,
            "status": execution_filter.status.value if execution_filter.status else None,
            "plan_item_slug": execution_filter.plan_item_slug,
            "key": dict(page_key),
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        body = _b64encode(text.encode())
        return f"{body}.{_b64encode(self._sign(body))}"

    def decode(self, cursor: str, tenant_id: str, execution_filter: ExecutionFilter) -> PageKey:
        """The start key in `cursor`, after checking its signature, tenant and filter."""
        payload = self._verified_payload(cursor)
        if payload["tenant"] != tenant_id:
            raise InvalidCursorError("it belongs to another tenant")
        if _filter_of(payload) != execution_filter:
            raise InvalidCursorError(
                "it was issued for another filter; repeat the status and plan_item_slug of the first page"
            )
        page_key: dict[str, str] = payload["key"]
        _check_page_key(page_key, tenant_id, execution_filter)
        return page_key

    def _sign(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode(), hashlib.sha256).digest()

    def _verified_payload(self, cursor: str) -> dict[str, Any]:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise InvalidCursorError("it is too long")
        body, dot, signature = cursor.partition(".")
        if not dot or not _BASE64URL.fullmatch(body) or not _BASE64URL.fullmatch(signature):
            raise InvalidCursorError("it is malformed (pass metadata.after unchanged)")
        # Compared as text: a non-canonical encoding of the right MAC is refused too.
        if not hmac.compare_digest(signature, _b64encode(self._sign(body))):
            raise InvalidCursorError("its signature does not match (it was altered or is foreign)")
        return _parse_payload(body)


def _parse_payload(body: str) -> dict[str, Any]:
    raw = _b64decode(body)
    payload: Any = None
    with contextlib.suppress(ValueError):  # not JSON, or not UTF-8
        payload = json.loads(raw) if raw is not None else None
    if not _payload_is_well_formed(payload):
        raise InvalidCursorError("its content is malformed")
    result: dict[str, Any] = payload
    return result


def _payload_is_well_formed(payload: Any) -> bool:
    if not isinstance(payload, dict) or payload.get("v") != CURSOR_VERSION:
        return False
    page_key = payload.get("key")
    return (
        isinstance(payload.get("tenant"), str)
        and payload.get("status") in {None, *(status.value for status in ExecutionStatus)}
        and isinstance(payload.get("plan_item_slug"), str | None)
        and isinstance(page_key, dict)
        and all(isinstance(v, str) for v in page_key.values())
    )


def _filter_of(payload: Mapping[str, Any]) -> ExecutionFilter:
    status = payload["status"]
    return ExecutionFilter(
        status=ExecutionStatus(status) if status is not None else None,
        plan_item_slug=payload["plan_item_slug"],
    )


def _check_page_key(page_key: PageKey, tenant_id: str, execution_filter: ExecutionFilter) -> None:
    """The store's own check of a start key, run before any read: a cursor that does not fit is a
    400 that names the cursor."""
    index = keys.index_for_filter(tenant_id, execution_filter.status, execution_filter.plan_item_slug)
    try:
        keys.check_page_key(page_key, tenant_id, index)
    except InvalidPageKeyError:
        raise InvalidCursorError("its start key does not fit this query") from None


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
