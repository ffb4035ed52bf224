import re

import pytest

from execution_stream.domain.identity import derive_execution_id, execution_id_for
from execution_stream.domain.models import Step, TriggerEvent

PARTS = ("tenant", "event", "asset", "workflow", "job")


def test_deterministic() -> None:
    assert derive_execution_id(*PARTS) == derive_execution_id(*PARTS)


def test_is_32_lowercase_hex() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", derive_execution_id(*PARTS))


@pytest.mark.parametrize("position", range(len(PARTS)))
def test_sensitive_to_every_part(position: int) -> None:
    changed = list(PARTS)
    changed[position] += "-other"
    assert derive_execution_id(*changed) != derive_execution_id(*PARTS)


def test_separator_is_not_ambiguous() -> None:
    assert derive_execution_id("a", "bc", "x", "y", "z") != derive_execution_id("ab", "c", "x", "y", "z")


def test_separator_inside_a_part_is_refused() -> None:
    with pytest.raises(ValueError, match="separator"):
        derive_execution_id("a\x1fb", "c", "x", "y", "z")


def test_execution_id_for_uses_the_event_identity() -> None:
    event = TriggerEvent(
        tenant_id="tenant",
        jit_event_id="event",
        jit_event_name="pull_request_created",
        asset_id="asset",
        plan_slug="plan",
        plan_item_slug="item",
        workflow_slug="workflow",
        job_name="job",
        steps=[Step(name="Run", uses="image")],
        job_runner="github_actions",
    )
    assert execution_id_for(event) == derive_execution_id(*PARTS)
