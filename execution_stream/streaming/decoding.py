"""Records of the internal topics the table agents read, decoded one by one; what cannot be decoded
or processed becomes the effects that dead-letter it, so that its partition goes on."""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import ValidationError

from execution_stream.pipeline.messages import DeadLetterReason, Effects, dead_letter
from execution_stream.streaming.agent_loop import source_record

logger = logging.getLogger(__name__)


def decode(adapter: Any, event: Any) -> Any:
    """The message, or the effects that dead-letter it."""
    try:
        return adapter.validate_python(json.loads(event.message.value))
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError, ValidationError) as error:
        effects = Effects()
        effects.outgoing.append(dead_letter(source_record(event), DeadLetterReason.INVALID, str(error)))
        return effects


def decode_keyed_by_tenant(adapter: Any, event: Any) -> Any:
    """The message, or the effects that dead-letter it: its key must be its tenant_id, or its
    state would be written to another tenant's partition."""
    message = decode(adapter, event)
    if isinstance(message, Effects) or event.message.key == message.tenant_id.encode():
        return message
    effects = Effects()
    problem = f"the record's key must be its tenant_id {message.tenant_id!r}, not {event.message.key!r}"
    effects.outgoing.append(dead_letter(source_record(event), DeadLetterReason.INVALID, problem))
    return effects


def dead_letter_failed(event: Any, error: Exception, what: str) -> Effects:
    """A record no retry can process is dead-lettered, so that its partition goes on."""
    record = source_record(event)
    trace = record.received_trace()
    logger.error(
        "%s failed on a record; dead-lettered", what, exc_info=error, extra={"trace_id": trace.trace_id}
    )
    effects = Effects()
    effects.outgoing.append(dead_letter(record, DeadLetterReason.PROCESSING_FAILED, repr(error), trace))
    return effects
