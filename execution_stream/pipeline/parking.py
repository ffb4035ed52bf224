"""Triggers whose asset is not known yet wait here, per tenant, up to the configured time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from execution_stream.domain.models import TriggerEvent
from execution_stream.pipeline.records import (
    DeadLetterReason,
    Effects,
    ParkedTrigger,
    SourceRecord,
    WakeUp,
    dead_letter,
)
from execution_stream.pipeline.triggers import Prepared, TriggerStep


def source_of(parked: ParkedTrigger) -> SourceRecord:
    fields = parked.source
    return SourceRecord(
        topic=fields["topic"],
        partition=fields["partition"],
        offset=fields["offset"],
        key=fields["key"].encode() if fields.get("key") is not None else None,
        value=fields["value"].encode() if fields.get("value") is not None else None,
        timestamp_ms=fields.get("timestamp_ms"),
    )


@dataclass
class ParkingStep:
    triggers: TriggerStep
    wait_seconds: float
    now: Callable[[], datetime]

    async def handle(
        self, waiting: Sequence[ParkedTrigger], message: ParkedTrigger | WakeUp
    ) -> tuple[list[ParkedTrigger], Effects]:
        """The triggers still waiting, and what to send for those that are done waiting."""
        candidates = list(waiting)
        if isinstance(message, ParkedTrigger) and message.source not in [p.source for p in waiting]:
            candidates.append(message)
        effects = Effects()
        still_waiting: list[ParkedTrigger] = []
        ready: list[Prepared] = []
        for parked in candidates:
            source = source_of(parked)
            event = TriggerEvent.model_validate(parked.trigger)
            if self.triggers.assets.get(event.asset_id) is not None:
                prepared = self.triggers.prepare_with_asset(source, event, effects)
                ready.extend([prepared] if prepared else [])
            elif self.now().timestamp() - parked.first_seen_at >= self.wait_seconds:
                waited = f"asset {event.asset_id!r} unknown after waiting {self.wait_seconds:g}s"
                effects.outgoing.append(dead_letter(source, DeadLetterReason.ASSET_NOT_FOUND, waited))
            else:
                still_waiting.append(parked)
        await self.triggers.store(ready, effects)
        return still_waiting, effects
