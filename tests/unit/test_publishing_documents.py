"""`publish-trigger`'s input: one document, an array, or several in a row, each checked as the worker
decodes it; any invalid one names its number and fields, and nothing is published."""

from __future__ import annotations

import json
from typing import Any

import pytest

from execution_stream.operations.publishing import (
    Checked,
    InvalidDocumentsError,
    Kind,
    Published,
    check_documents,
    read_documents,
)
from tests.support.factories import asset, trigger_event


def trigger(number: int, tenant: str = "tenant-a") -> dict[str, Any]:
    document: dict[str, Any] = trigger_event(tenant, f"event-{number}").model_dump(mode="json")
    return document


def problems_of(text: str, kind: Kind = Kind.TRIGGER) -> list[str]:
    with pytest.raises(InvalidDocumentsError) as refused:
        check_documents(read_documents(text), kind)
    return refused.value.problems


def test_one_document_is_checked_keyed_by_its_tenant_as_compact_json() -> None:
    [checked] = check_documents(read_documents(json.dumps(trigger(1), indent=2)), Kind.TRIGGER)

    assert checked.key == "tenant-a"
    assert checked.label == "jit_event_id=event-1"
    assert json.loads(checked.value) == trigger(1)
    assert b"\n" not in checked.value
    assert b", " not in checked.value


def test_an_array_holds_one_document_per_element() -> None:
    text = json.dumps([trigger(1), trigger(2, "tenant-b")])

    checked = check_documents(read_documents(text), Kind.TRIGGER)

    assert [(c.key, c.label) for c in checked] == [
        ("tenant-a", "jit_event_id=event-1"),
        ("tenant-b", "jit_event_id=event-2"),
    ]


@pytest.mark.parametrize("separator", ["\n", "", " \r\n\t", "\n\n"])
def test_documents_one_after_another_are_read_in_order(separator: str) -> None:
    text = separator.join(json.dumps(trigger(n)) for n in (1, 2, 3)) + "\n"

    assert read_documents(text) == [trigger(1), trigger(2), trigger(3)]


def test_an_invalid_document_is_named_by_its_number_and_field() -> None:
    missing_steps = {name: value for name, value in trigger(2).items() if name != "steps"}
    text = "\n".join(json.dumps(d) for d in (trigger(1), missing_steps, trigger(3)))

    assert problems_of(text) == ["document 2: steps: Field required"]


def test_every_invalid_document_is_named_once() -> None:
    no_runner = {name: value for name, value in trigger(1).items() if name != "job_runner"}
    empty_steps = trigger(3) | {"steps": []}
    text = json.dumps([no_runner, trigger(2), empty_steps, 7])

    problems = problems_of(text)

    assert problems[0] == "document 1: job_runner: Field required"
    assert problems[1].startswith("document 3: steps: List should have at least 1 item")
    assert problems[2].startswith("document 4: value: Input should be a valid dictionary")
    assert len(problems) == 3


def test_the_worker_s_own_rules_apply_not_only_the_schema() -> None:
    # The model's validators (a plausible created_at, no '#' in an identifier) are the worker's.
    text = json.dumps(
        [trigger(1) | {"created_at": "1999-12-31T00:00:00Z"}, trigger(2) | {"tenant_id": "a#b"}]
    )

    problems = problems_of(text)

    assert problems[0].startswith("document 1: created_at: Value error, must not be before 2000")
    assert problems[1].startswith("document 2: tenant_id: Value error, must not contain '#'")


@pytest.mark.parametrize("text", ["", "  \n\t", "[]", "\n[]\n"])
def test_empty_input_is_refused(text: str) -> None:
    assert problems_of(text) == ["the input holds no document"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"tenant_id": ', "document 1: not JSON: Expecting value: line 1 column 15 (char 14)"),
        ('{"a": 1}\n{"b": NaN}', "document 2: not JSON: NaN is not a JSON value"),
        ('{"a": 1} nope', "document 2: not JSON: Expecting value: line 1 column 10 (char 9)"),
    ],
)
def test_text_that_is_not_json_names_where(text: str, problem: str) -> None:
    assert problems_of(text) == [problem]


def test_assets_are_checked_as_the_asset_cache_reads_them_and_keyed_by_asset_id() -> None:
    document = asset("tenant-a", "asset-9").model_dump(mode="json")

    assert check_documents([document], Kind.ASSET) == [
        Checked("asset-9", json.dumps(document, separators=(",", ":")).encode(), "tenant_id=tenant-a")
    ]
    without_owner = {name: value for name, value in document.items() if name != "owner"}
    assert problems_of(json.dumps([document, without_owner]), Kind.ASSET) == [
        "document 2: owner: Field required"
    ]


def test_a_published_record_is_one_line_naming_where_it_went() -> None:
    published = Published("trigger-execution", 3, 41, "tenant-a", "jit_event_id=event-1")

    assert published.line() == "published trigger-execution[3]@41 key=tenant-a jit_event_id=event-1"
