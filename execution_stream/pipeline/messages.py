"""What the pipeline reads and writes on Kafka, apart from the domain records themselves."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from execution_stream.domain.models import Execution, ExecutionEvent
from execution_stream.domain.scheduling import Concurrency
from execution_stream.domain.trace import TRACEPARENT, TRACESTATE, CarriesTrace, TraceContext

logger = logging.getLogger(__name__)


class OfTenant(Protocol):
    @property
    def tenant_id(self) -> str: ...


M = TypeVar("M")
T = TypeVar("T", bound=OfTenant)


class Destination(StrEnum):
    ALLOCATE = "allocate"
    ENRICH = "enrich"
    RUNNER_JOBS = "runner_jobs"
    EVENTS = "events"
    STATUS = "status"
    WAITING = "waiting"
    COMMANDS = "commands"
    DLQ = "dlq"


class DeadLetterReason(StrEnum):
    NOT_JSON = "not_json"
    INVALID = "invalid"
    ASSET_NOT_FOUND = "asset_not_found"
    ASSET_MISMATCH = "asset_mismatch"
    DISPATCH_REFUSED = "dispatch_refused"
    DISPATCH_TARGET_MISSING = "dispatch_target_missing"
    STORE_REFUSED = "store_refused"
    STATUS_NOT_REPORTABLE = "status_not_reportable"
    EXECUTION_NOT_FOUND = "execution_not_found"
    PROCESSING_FAILED = "processing_failed"


Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Outgoing:
    destination: Destination
    key: str | None
    value: bytes
    headers: Headers = ()
    # The status change a record on execution-events encodes, for whoever counts them.
    event: ExecutionEvent | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SourceRecord:
    """A consumed record as it was on the wire, kept to dead-letter it verbatim."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None
    headers: Headers = ()

    def received_trace(self) -> TraceContext:
        """The trace context of its headers, or a new one (a new one on each call: call it once)."""
        return TraceContext.received(self._header(TRACEPARENT), self._header(TRACESTATE))

    def _header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key == name]
        # W3C: a traceparent given more than once is invalid; only tracestate may be split.
        if not values or (name == TRACEPARENT and len(values) > 1):
            return None
        try:
            return ",".join(value.decode("ascii") for value in values)
        except UnicodeDecodeError:
            return None

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key.decode(errors="replace") if self.key is not None else None,
            "value": self.value.decode(errors="replace") if self.value is not None else None,
            "timestamp_ms": self.timestamp_ms,
        }


def trace_headers(trace: TraceContext | None) -> Headers:
    if trace is None:
        return ()
    return tuple((name, value.encode()) for name, value in trace.fields().items())


def dead_letter(
    source: SourceRecord, reason: DeadLetterReason, message: str, trace: TraceContext | None = None
) -> Outgoing:
    """The original bytes, with where they came from and why, in headers (as Kafka Connect does), and
    the trace context of what caused it (by default the record's own, or a new one)."""
    headers: Headers = (
        ("dlq.reason", reason.value.encode()),
        ("dlq.message", message.encode()[:4096]),
        ("dlq.topic", source.topic.encode()),
        ("dlq.partition", str(source.partition).encode()),
        ("dlq.offset", str(source.offset).encode()),
        *trace_headers(trace or source.received_trace()),
    )
    key = source.key.decode(errors="replace") if source.key is not None else None
    return Outgoing(Destination.DLQ, key, source.value or b"", headers)


def encode(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


class ExecutionRef(CarriesTrace):
    """What finds an execution in DynamoDB: the allocator queues these, and dispatching reads the
    execution itself. A whole Execution decodes as its reference too."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    tenant_id: str
    jit_event_id: str
    execution_id: str
    job_runner: str
    # How many times its dispatch was set aside already (a retry's backoff grows with it).
    dispatch_attempt: int = 0

    @classmethod
    def of(cls, execution: Execution) -> ExecutionRef:
        return cls(
            tenant_id=execution.tenant_id,
            jit_event_id=execution.jit_event_id,
            execution_id=execution.execution_id,
            job_runner=execution.job_runner,
            traceparent=execution.traceparent,
            tracestate=execution.tracestate,
        )


class AllocationRequest(CarriesTrace):
    model_config = ConfigDict(frozen=True)

    type: Literal["request"] = "request"
    tenant_id: str
    jit_event_id: str
    execution_id: str
    job_runner: str
    priority: int = 0
    # The supersede group (domain/scheduling.py) it replaces an older execution in, if any.
    supersede_group: str | None = None
    cancel_in_progress: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_whole_execution(cls, data: Any) -> Any:
        # Requests written before references carried the whole execution.
        if isinstance(data, dict) and isinstance(data.get("execution"), dict):
            return {"type": "request", **ExecutionRef.model_validate(data["execution"]).model_dump()}
        return data

    @classmethod
    def of(cls, execution: Execution, concurrency: Concurrency | None = None) -> AllocationRequest:
        group = concurrency.key if concurrency is not None else None
        in_progress = concurrency is not None and concurrency.cancel_in_progress
        return cls(
            **ExecutionRef.of(execution).model_dump(),
            priority=execution.priority,
            supersede_group=group,
            cancel_in_progress=in_progress,
        )


class AllocationRelease(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: Literal["release"] = "release"
    tenant_id: str
    execution_id: str
    job_runner: str = ""


class AllocationLease(BaseModel):
    """The deadline an execution got at dispatch, for its slot's holder."""

    model_config = ConfigDict(frozen=True)

    type: Literal["lease"] = "lease"
    tenant_id: str
    execution_id: str
    job_runner: str
    deadline_at: datetime


class AllocationRefill(BaseModel):
    """Admit into free slots of a runner (after a raised limit), with no request or release."""

    model_config = ConfigDict(frozen=True)

    type: Literal["refill"] = "refill"
    tenant_id: str
    job_runner: str


class AllocationSetAside(BaseModel):
    """A holder's dispatch could not be done now (its runner is unavailable): try again at retry_at."""

    model_config = ConfigDict(frozen=True)

    type: Literal["set_aside"] = "set_aside"
    tenant_id: str
    execution_id: str
    job_runner: str
    retry_at: datetime
    attempt: int
    reason: str


class AllocationRedispatch(BaseModel):
    """A holder whose job failed retryably: dispatch it again at retry_at (its attempt is counted
    on the execution)."""

    model_config = ConfigDict(frozen=True)

    type: Literal["redispatch"] = "redispatch"
    tenant_id: str
    execution_id: str
    job_runner: str
    retry_at: datetime


class AllocationCancelRequested(BaseModel):
    """A holder asked to cancel at its runner: canceled by the watchdog unless the runner confirms
    by confirm_by."""

    model_config = ConfigDict(frozen=True)

    type: Literal["cancel_requested"] = "cancel_requested"
    tenant_id: str
    execution_id: str
    job_runner: str
    confirm_by: datetime


AllocationMessageType = (
    AllocationRequest
    | AllocationRelease
    | AllocationLease
    | AllocationRefill
    | AllocationSetAside
    | AllocationRedispatch
    | AllocationCancelRequested
)
AllocationMessage = Annotated[AllocationMessageType, Field(discriminator="type")]
allocation_message = TypeAdapter[AllocationMessageType](AllocationMessage)


class ParkedTrigger(CarriesTrace):
    """A trigger waiting for its asset: a reference to its execution, stored in DynamoDB with
    `waiting_for_asset`, and where the trigger came from (for its dead letter)."""

    model_config = ConfigDict(frozen=True)

    type: Literal["park"] = "park"
    tenant_id: str
    jit_event_id: str
    execution_id: str
    asset_id: str
    first_seen_at: float
    source: dict[str, Any]
    # The trigger's own installation, owner and repository, checked against the asset when it comes.
    target_attributes: dict[str, str] = Field(default_factory=dict)


class WakeUp(BaseModel):
    """Look again at the triggers waiting for one asset of a tenant."""

    model_config = ConfigDict(frozen=True)

    type: Literal["wake"] = "wake"
    tenant_id: str
    asset_id: str


WaitingMessage = Annotated[ParkedTrigger | WakeUp, Field(discriminator="type")]
waiting_message = TypeAdapter[ParkedTrigger | WakeUp](WaitingMessage)


@dataclass(frozen=True)
class StateWrite:
    """Writes to a step's own state, and the record they come from (a faust table sends them to
    that record's changelog partition)."""

    apply: Callable[[], None]
    source: SourceRecord | None = None


Within = Callable[[SourceRecord | None], AbstractContextManager[object]]


@dataclass
class Effects:
    """Everything one step wants written before its input is acknowledged: records to send, then
    writes to its own state, applied only once the records are sent (the state never runs ahead of
    what was sent)."""

    outgoing: list[Outgoing] = field(default_factory=list)
    stores: list[StateWrite] = field(default_factory=list)

    def send(
        self, destination: Destination, key: str | None, value: bytes, trace: TraceContext | None = None
    ) -> None:
        """`value` to `destination`, with the trace context of what caused it in its headers."""
        self.outgoing.append(Outgoing(destination, key, value, trace_headers(trace)))

    def publish(self, event: ExecutionEvent, trace: TraceContext | None) -> None:
        """A status change on execution-events; the event rides along for the worker's metrics."""
        headers = trace_headers(trace)
        self.outgoing.append(Outgoing(Destination.EVENTS, event.tenant_id, encode(event), headers, event))

    def then_store(self, store: Callable[[], None], source: SourceRecord | None = None) -> None:
        self.stores.append(StateWrite(store, source))

    def merge(self, more: Effects) -> None:
        self.outgoing.extend(more.outgoing)
        self.stores.extend(more.stores)

    def store(self, within: Within = lambda source: nullcontext()) -> None:
        """Applies the state writes, in their order, each `within` its source record's context:
        call once the outgoing records are sent."""
        for write in self.stores:
            with within(write.source):
                write.apply()


def decode(adapter: TypeAdapter[M], record: SourceRecord) -> M | Outgoing:
    """The message a record holds, or the dead letter that says why it holds none."""
    try:
        return adapter.validate_json(record.value or b"")
    except ValidationError as error:
        return dead_letter(record, DeadLetterReason.INVALID, str(error))


def decode_keyed_by_tenant(adapter: TypeAdapter[T], record: SourceRecord) -> T | Outgoing:
    """The message, or its dead letter: its key must be its tenant_id, or its state would be
    written to another tenant's partition."""
    message = decode(adapter, record)
    if isinstance(message, Outgoing) or record.key == message.tenant_id.encode():
        return message
    problem = f"the record's key must be its tenant_id {message.tenant_id!r}, not {record.key!r}"
    return dead_letter(record, DeadLetterReason.INVALID, problem)


def failed(record: SourceRecord, error: Exception, what: str) -> Outgoing:
    """The dead letter of a record no retry can process, so that its partition goes on."""
    trace = record.received_trace()
    where = record.to_json() | {"value": None, "trace_id": trace.trace_id}
    logger.error("%s failed on a record; dead-lettered", what, exc_info=error, extra=where)
    return dead_letter(record, DeadLetterReason.PROCESSING_FAILED, repr(error), trace)
