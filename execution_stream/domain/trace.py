"""W3C Trace Context (https://www.w3.org/TR/trace-context/) as the service carries it.

A trigger's `traceparent` (and its `tracestate`) goes unchanged on every record the trigger causes:
the worker records no spans of its own, so it has no parent-id to put in. A trigger without a valid
`traceparent` gets a new one (version 00, random ids, sampled), without its `tracestate` (the spec
forbids reading a `tracestate` whose `traceparent` could not be parsed).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
# Version 00 is exactly these four fields; a later version starts with them and may add fields after
# a dash. "ff" is forbidden as a version.
_VERSION_00 = re.compile(r"00-(?P<trace_id>[0-9a-f]{32})-(?P<parent_id>[0-9a-f]{16})-[0-9a-f]{2}")
_LATER_VERSION = re.compile(
    r"(?!ff)(?!00)[0-9a-f]{2}-(?P<trace_id>[0-9a-f]{32})-(?P<parent_id>[0-9a-f]{16})-[0-9a-f]{2}"
    r"(-[\x21-\x7e]*)?"
)
# Bounds on what is kept: both are stored with the execution and in the allocator's table. W3C asks
# to propagate at least 512 characters of tracestate; a longer one is dropped whole.
MAX_TRACEPARENT_LENGTH = 256
MAX_TRACESTATE_LENGTH = 512
MAX_TRACESTATE_MEMBERS = 32
_KEY_CHARACTER = r"[a-z0-9_\-*/]"
_TRACESTATE_KEY = (
    rf"(?:[a-z]{_KEY_CHARACTER}{{0,255}}|[a-z0-9]{_KEY_CHARACTER}{{0,240}}@[a-z]{_KEY_CHARACTER}{{0,13}})"
)
_TRACESTATE_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_TRACESTATE_MEMBER = re.compile(f"{_TRACESTATE_KEY}={_TRACESTATE_VALUE}")
_OPTIONAL_WHITESPACE = " \t"
NEW_TRACE_FLAGS = "01"


@dataclass(frozen=True)
class TraceContext:
    traceparent: str
    tracestate: str | None = None

    @property
    def trace_id(self) -> str:
        return self.traceparent[3:35]

    def fields(self) -> dict[str, str]:
        """`traceparent`, and `tracestate` when there is one: header names and their values."""
        named = {TRACEPARENT: self.traceparent}
        if self.tracestate is not None:
            named[TRACESTATE] = self.tracestate
        return named

    @classmethod
    def parse(cls, traceparent: str | None, tracestate: str | None = None) -> TraceContext | None:
        """The context these headers carry, or None when `traceparent` is absent or invalid; an
        invalid `tracestate` is dropped and the `traceparent` kept."""
        valid = valid_traceparent(traceparent)
        return cls(valid, valid_tracestate(tracestate)) if valid is not None else None

    @classmethod
    def received(cls, traceparent: str | None, tracestate: str | None = None) -> TraceContext:
        """The context these headers carry, or a new one when they carry none."""
        return cls.parse(traceparent, tracestate) or cls.new()

    @classmethod
    def carried(cls, traceparent: str | None, tracestate: str | None, execution_id: str) -> TraceContext:
        """The context an execution's record kept, or one derived from its id when it kept none."""
        return cls.parse(traceparent, tracestate) or cls.derived(execution_id)

    @classmethod
    def new(cls) -> TraceContext:
        return cls(_traceparent(_nonzero(secrets.token_hex(16)), _nonzero(secrets.token_hex(8))))

    @classmethod
    def derived(cls, seed: str) -> TraceContext:
        """The same context for the same seed: for a record of an execution stored before the
        service kept trace contexts, so that all its records still share one trace-id."""
        digest = hashlib.blake2b(seed.encode(), digest_size=24).hexdigest()
        trace_id, parent_id = digest[:32], digest[32:]
        return cls(_traceparent(_nonzero(trace_id), _nonzero(parent_id)))


class CarriesTrace(BaseModel):
    """A record about one execution, with the trace context of the trigger that caused it."""

    traceparent: str | None = None
    tracestate: str | None = None
    if TYPE_CHECKING:
        execution_id: str

    @property
    def trace(self) -> TraceContext:
        """The context kept, or one derived from the execution's id when none was kept (stored
        before the service kept them)."""
        return TraceContext.carried(self.traceparent, self.tracestate, self.execution_id)


def valid_traceparent(value: str | None) -> str | None:
    """`value` without surrounding whitespace when it is a valid traceparent, else None."""
    if value is None or len(value) > MAX_TRACEPARENT_LENGTH:
        return None
    value = value.strip(_OPTIONAL_WHITESPACE)
    found = _VERSION_00.fullmatch(value) or _LATER_VERSION.fullmatch(value)
    if found is None or _all_zero(found["trace_id"]) or _all_zero(found["parent_id"]):
        return None
    return value


def valid_tracestate(value: str | None) -> str | None:
    """`value` when it is a tracestate list within the bounds kept, else None."""
    if value is None or len(value) > MAX_TRACESTATE_LENGTH:
        return None
    members = [member.strip(_OPTIONAL_WHITESPACE) for member in value.split(",")]
    members = [member for member in members if member]
    if not members or len(members) > MAX_TRACESTATE_MEMBERS:
        return None
    if not all(_TRACESTATE_MEMBER.fullmatch(member) for member in members):
        return None
    return value.strip(_OPTIONAL_WHITESPACE)


def _traceparent(trace_id: str, parent_id: str) -> str:
    return f"00-{trace_id}-{parent_id}-{NEW_TRACE_FLAGS}"


def _nonzero(value: str) -> str:
    """W3C forbids all-zero ids; one bit set keeps the id otherwise as random as it was."""
    return value if not _all_zero(value) else value[:-1] + "1"


def _all_zero(value: str) -> bool:
    return value.strip("0") == ""
