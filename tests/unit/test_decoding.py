"""Records on the internal topics: a key that is not the record's tenant is a dead letter."""

from __future__ import annotations

import pytest

from execution_stream.pipeline.messages import (
    AllocationRelease,
    Outgoing,
    SourceRecord,
    allocation_message,
    decode_keyed_by_tenant,
)

RELEASE = b'{"type": "release", "tenant_id": "tenant-a", "execution_id": "e1"}'


def event(key: bytes | None, value: bytes = RELEASE) -> SourceRecord:
    return SourceRecord("allocate-runner-resource", 3, 7, key, value)


def test_a_record_keyed_by_its_tenant_is_decoded() -> None:
    decoded = decode_keyed_by_tenant(allocation_message, event(b"tenant-a"))
    assert decoded == AllocationRelease(tenant_id="tenant-a", execution_id="e1")


@pytest.mark.parametrize("key", [None, b"\xff\xfe", b"tenant-b", b""])
def test_a_record_whose_key_is_not_its_tenant_is_dead_lettered(key: bytes | None) -> None:
    decoded = decode_keyed_by_tenant(allocation_message, event(key))

    assert isinstance(decoded, Outgoing)
    letter = decoded
    headers = dict(letter.headers)
    assert headers["dlq.reason"] == b"invalid"
    assert b"key must be its tenant_id" in headers["dlq.message"]
    assert (headers["dlq.topic"], headers["dlq.offset"]) == (b"allocate-runner-resource", b"7")
    assert letter.value == RELEASE


def test_an_undecodable_value_is_dead_lettered_whatever_its_key() -> None:
    decoded = decode_keyed_by_tenant(allocation_message, event(None, b"\x00not json"))
    assert isinstance(decoded, Outgoing)
    assert dict(decoded.headers)["dlq.reason"] == b"invalid"
