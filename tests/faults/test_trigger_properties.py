"""Property-based: the trigger model and the decode path against generated hostile input (no I/O).

- Any document either validates into a TriggerEvent whose ids hold no '#' and no control
  character, and which can be written everywhere the pipeline writes it (JSON for Kafka, an item
  for DynamoDB), or raises pydantic's ValidationError: never another exception.
- `decode_trigger` of arbitrary bytes returns such an event or raises RejectedRecordError
  (`not_json` or `invalid`): never anything else, so no record can crash an agent.
"""

from __future__ import annotations

import contextlib
import json
import math
import unicodedata
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from execution_stream.adapters.dynamodb_client import to_attribute_values
from execution_stream.adapters.dynamodb_item_codec import execution_to_item
from execution_stream.domain.executions import ASSET_TARGET_ATTRIBUTES, build_execution, target_attributes
from execution_stream.domain.models import KEY_SEPARATOR, Asset, ExecutionEvent, TriggerEvent
from execution_stream.pipeline.messages import DeadLetterReason
from execution_stream.pipeline.triggers import RejectedRecordError, decode_trigger
from tests.support.factories import asset, trigger_event

pytestmark = pytest.mark.faults

IDENTIFIERS = ("tenant_id", "jit_event_id", "asset_id", "plan_slug", "plan_item_slug", "workflow_slug")
NAMES = ("jit_event_name", "job_name", "job_runner")
TEMPLATE = trigger_event("tenant-a", "event-1", "asset-1", job_runner="jit_runner").model_dump(mode="json")

# Characters that matter: the key separator, controls (C0, DEL, C1), format marks (RTL, ZWJ, BOM),
# lone surrogates, non-characters, emoji, combining marks.
HOSTILE_CHARACTERS = st.sampled_from(
    [
        *"#\x00\x01\n\t\x1f\x7f\x85\x9f\u200d\u200f\u202e\ufeff\ufffe\uffff\U0001f680\u0301é中",
        "\ud800",
        "\udfff",
    ]
)
TEXT = st.text(st.one_of(HOSTILE_CHARACTERS, st.characters()), max_size=30)
LONG_TEXT = st.integers(250, 300).map(lambda n: "x" * n)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**60), max_value=10**60),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=8,
)
DATES = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.sampled_from(["9999-12-31T23:59:59Z", "0001-01-01T00:00:00", "1970-01-01T00:00:00Z", "now", ""]),
)
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    **{name: st.one_of(TEXT, LONG_TEXT, JSON_SCALARS) for name in IDENTIFIERS + NAMES},
    "steps": st.one_of(
        st.lists(
            st.fixed_dictionaries(
                {"name": TEXT, "uses": TEXT},
                optional={"params": st.dictionaries(TEXT, JSON_VALUES, max_size=3), "extra": JSON_VALUES},
            ),
            max_size=2,
        ),
        JSON_VALUES,
    ),
    "additional_attributes": st.one_of(st.dictionaries(TEXT, JSON_VALUES, max_size=4), JSON_VALUES),
    "created_at": st.one_of(DATES, JSON_SCALARS),
}


@st.composite
def trigger_documents(draw: st.DrawFn) -> Any:
    """The valid template with some fields changed, dropped, or added; sometimes not an object."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON_VALUES)
    document = dict(TEMPLATE)
    for name in draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), max_size=4, unique=True)):
        if draw(st.booleans()) and name != "created_at":
            document.pop(name, None)
        else:
            document[name] = draw(FIELD_VALUES[name])
    document.update(draw(st.dictionaries(TEXT, JSON_VALUES, max_size=2)))
    return document


def check_event_can_go_everywhere(event: TriggerEvent) -> None:
    """What the pipeline does with a valid trigger: it must never fail on the trigger's content."""
    for name in IDENTIFIERS:
        value = getattr(event, name)
        assert KEY_SEPARATOR not in value
        assert not any(unicodedata.category(c) == "Cc" for c in value), (name, value)
    for name in IDENTIFIERS + NAMES:
        getattr(event, name).encode()  # a Kafka key, a DynamoDB string: valid UTF-8
    event.model_dump_json()  # the parking topic, the allocation request
    execution = build_execution(event, asset_it_names(event), _now())
    execution.model_dump_json()  # enrich-and-dispatch
    ExecutionEvent.from_change(execution, None).model_dump_json()  # execution-events
    json.dumps(execution_to_item(execution), allow_nan=False, default=str)
    # A number DynamoDB cannot hold (38 significant digits) is the store's refusal to make:
    # the repository turns it into a RepositoryError (dead letter `store_refused`).
    with contextlib.suppress(ArithmeticError):
        to_attribute_values(execution_to_item(execution))


def asset_it_names(event: TriggerEvent) -> Asset:
    """Its asset, naming the installation, owner and repository the trigger names: a trigger that
    contradicts its asset is refused as `asset_mismatch` (tests/unit/test_executions.py)."""
    given = target_attributes(event.additional_attributes)
    named = {name: given[name] for name in ASSET_TARGET_ATTRIBUTES if name in given}
    if "original_repository" in given:
        named["asset_name"] = given["original_repository"]
    return asset(event.tenant_id, event.asset_id).model_copy(update=named)


def _now() -> datetime:
    return datetime.now(UTC)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=trigger_documents())
@example(document={**TEMPLATE, "additional_attributes": {"x": "\ud800"}})
@example(document={**TEMPLATE, "additional_attributes": {"x": math.nan}})
@example(document={**TEMPLATE, "steps": [{"name": "n", "uses": "u", "params": {"p": math.inf}}]})
@example(document={**TEMPLATE, "jit_event_id": "a#b"})
@example(document={**TEMPLATE, "created_at": -1})
def test_a_document_validates_into_a_safe_trigger_or_is_a_validation_error(document: Any) -> None:
    try:
        event = TriggerEvent.model_validate(document)
    except ValidationError:
        return
    check_event_can_go_everywhere(event)


def _encodings(document: Any) -> st.SearchStrategy[bytes]:
    text = json.dumps(document, ensure_ascii=True)  # lone surrogates become \\udXXX escapes
    return st.sampled_from(
        [
            text.encode(),
            json.dumps(document, ensure_ascii=False).encode("utf-8", errors="surrogatepass"),
            text.encode("utf-16"),
        ]
    )


RAW_BYTES = st.one_of(
    st.binary(max_size=200),
    trigger_documents().flatmap(_encodings),
    trigger_documents()
    .flatmap(_encodings)
    .flatmap(
        lambda raw: st.tuples(st.integers(0, max(0, len(raw) - 1)), st.binary(max_size=3)).map(
            lambda cut: raw[: cut[0]] + cut[1] + raw[cut[0] + len(cut[1]) :]
        )
    ),
    st.none(),
)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=RAW_BYTES)
@example(raw=b'{"tenant_id": "\\ud800"}')
@example(raw=json.dumps({**TEMPLATE, "additional_attributes": {"x": "\ud800"}}).encode())
@example(raw=json.dumps({**TEMPLATE, "additional_attributes": {"x": "y"}}).replace('"y"', "NaN").encode())
@example(raw=b"\xff\xfe\x00\x00")
@example(raw=b"")
@example(raw=json.dumps({**TEMPLATE, "additional_attributes": {"owner": " itsecurity"}}).encode())
def test_decoding_any_bytes_gives_a_safe_trigger_or_the_pipelines_rejection(raw: bytes | None) -> None:
    try:
        event = decode_trigger(raw)
    except RejectedRecordError as rejected:
        reason, message = rejected.reason, str(rejected)
    else:
        check_event_can_go_everywhere(event)
        return
    assert reason in {DeadLetterReason.NOT_JSON, DeadLetterReason.INVALID}
    assert message
