"""In which order a tenant's waiting executions are admitted, and which newer trigger replaces an
older one (pure).

Priority: a class 0-9, higher first; a trigger's own `priority`, else the class its jit_event_name
is given, else the default. Supersede: triggers of the named jit_event_names form a group per tenant,
asset, plan item, job and pull request (GitHub's concurrency groups); a newer one cancels the older
one still pending, and with `cancel_in_progress` also one that runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from execution_stream.domain.models import Execution, TriggerEvent

PULL_REQUEST_ATTRIBUTE = "pull_request_number"


@dataclass(frozen=True)
class Concurrency:
    """The supersede group of an execution: `key` has no '#' (it is part of a table key)."""

    key: str
    cancel_in_progress: bool = False


@dataclass(frozen=True)
class SchedulingPolicy:
    default_priority: int = 0
    event_priorities: Mapping[str, int] = field(default_factory=dict)
    supersede_events: frozenset[str] = frozenset()
    supersede_in_progress_events: frozenset[str] = frozenset()

    def priority_of(self, trigger: TriggerEvent) -> int:
        if trigger.priority is not None:
            return trigger.priority
        return self.event_priorities.get(trigger.jit_event_name, self.default_priority)

    def concurrency_of(self, execution: Execution) -> Concurrency | None:
        """The group the execution supersedes others in, when its jit_event_name has one."""
        in_progress = execution.jit_event_name in self.supersede_in_progress_events
        if execution.jit_event_name not in self.supersede_events and not in_progress:
            return None
        return Concurrency(group_key(execution), cancel_in_progress=in_progress)


DEFAULT_POLICY = SchedulingPolicy()


def group_key(execution: Execution) -> str:
    """The same for every execution of one tenant's asset, plan item and job, and pull request when
    the trigger names one (`pull_request_number`): two pull requests of one repository never replace
    each other. A digest: job names may hold any character."""
    pull_request = execution.additional_attributes.get(PULL_REQUEST_ATTRIBUTE)
    parts = (
        execution.tenant_id,
        execution.asset_id,
        execution.plan_item_slug,
        execution.job_name,
        str(pull_request) if pull_request is not None else "",
    )
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]
