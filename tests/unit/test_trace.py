"""W3C trace context: a valid traceparent is forwarded unchanged, anything else is replaced."""

from __future__ import annotations

import re

import pytest

from execution_stream.domain.trace import (
    MAX_TRACESTATE_LENGTH,
    TraceContext,
    valid_traceparent,
    valid_tracestate,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
NEW_TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01")


@pytest.mark.parametrize(
    "value",
    [
        PARENT,
        f"00-{TRACE_ID}-00f067aa0ba902b7-00",  # not sampled: forwarded as it is
        f"cc-{TRACE_ID}-00f067aa0ba902b7-01",  # a later version, four fields
        f"cc-{TRACE_ID}-00f067aa0ba902b7-09-what-comes-later",  # a later version's own fields
    ],
)
def test_a_valid_traceparent_is_kept_unchanged(value: str) -> None:
    context = TraceContext.received(value)
    assert (context.traceparent, context.trace_id) == (value, TRACE_ID)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        PARENT.upper(),  # W3C: lowercase only
        f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # all-zero trace-id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent-id
        f"ff-{TRACE_ID}-00f067aa0ba902b7-01",  # version ff is forbidden
        f"{PARENT}-extra",  # version 00 has exactly four fields
        f"cc-{TRACE_ID}-00f067aa0ba902b7-01extra",  # a later version's fields follow a dash
        f"00-{TRACE_ID}-00f067aa0ba902b7",
        f"00-{TRACE_ID[:-1]}-00f067aa0ba902b7-01",
        f"00_{TRACE_ID}_00f067aa0ba902b7_01",
        f"0-{TRACE_ID}-00f067aa0ba902b7-01",
        f"00-{TRACE_ID}-00f067aa0ba902b7-0g",
    ],
)
def test_an_invalid_traceparent_is_not_valid(value: str) -> None:
    assert valid_traceparent(value) is None
    assert TraceContext.parse(value, "congo=t61rcWkgMzE") is None


def test_surrounding_whitespace_is_not_part_of_the_value() -> None:
    assert valid_traceparent(f" {PARENT}\t") == PARENT


def test_an_absent_or_invalid_traceparent_gets_a_new_one_without_its_tracestate() -> None:
    first = TraceContext.received(None, "congo=t61rcWkgMzE")
    second = TraceContext.received("garbage", "congo=t61rcWkgMzE")

    for made in (first, second):
        assert NEW_TRACEPARENT.fullmatch(made.traceparent)
        assert valid_traceparent(made.traceparent) == made.traceparent
        assert made.tracestate is None
    assert first.trace_id != second.trace_id


def test_a_tracestate_is_forwarded_with_its_traceparent() -> None:
    context = TraceContext.received(PARENT, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
    assert context.fields() == {
        "traceparent": PARENT,
        "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
    }


@pytest.mark.parametrize(
    "value",
    [
        "",
        "no-equals-sign",
        "UPPER=1",  # keys are lowercase
        "rojo=a=b",  # values hold no "="
        "rojo=\u00e9",  # printable ASCII only
        "rojo=1,=2",
        ",".join(f"k{n}=v" for n in range(33)),  # at most 32 members
        "a=" + "x" * MAX_TRACESTATE_LENGTH,
    ],
)
def test_an_invalid_tracestate_is_dropped_and_its_traceparent_kept(value: str) -> None:
    assert valid_tracestate(value) is None
    assert TraceContext.received(PARENT, value) == TraceContext(PARENT)


@pytest.mark.parametrize("value", ["rojo=1", "tenant@vendor=x,,other=y", "a=1, b=2", "k=a b"])
def test_a_valid_tracestate_is_kept(value: str) -> None:
    assert valid_tracestate(value) == value


def test_a_derived_context_is_the_same_for_the_same_execution_and_valid() -> None:
    derived = TraceContext.derived("e1")

    assert derived == TraceContext.derived("e1") != TraceContext.derived("e2")
    assert valid_traceparent(derived.traceparent) == derived.traceparent


def test_a_carried_context_is_the_kept_one_else_the_derived_one() -> None:
    assert TraceContext.carried(PARENT, None, "e1") == TraceContext(PARENT)
    assert TraceContext.carried(None, None, "e1") == TraceContext.derived("e1")
    assert TraceContext.carried("garbage", "rojo=1", "e1") == TraceContext.derived("e1")
