"""The demo's data: two tenants' assets, and triggers for both kinds of runner, each with the end
its stand-in runner gives it.

The first asset and its triggers are the seed's example (`../shared/seed/execution-service.md`); the
second tenant is `dev-tenant`, the one `execution-stream dev` prints a token for.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from execution_stream.dev_stack.dev_tokens import DEV_TENANT
from execution_stream.domain.enrichment import GITHUB_ACTIONS

SEED_TENANT = "92c4b3cc-ebdb-4662-8dbd-765a2e3b3af4"
TOPIC_RUNNER = "jit_runner"
FAIL_EVERY = 3
FAILURE = "the demo's stand-in runner fails every third job"

SEED_ASSET: Mapping[str, str] = {
    "asset_id": "81282625-8050-4305-8655-4f8fbc357921",
    "tenant_id": SEED_TENANT,
    "asset_name": "execution-service",
    "asset_type": "repo",
    "vendor": "github",
    "owner": "jitsecurity",
    "installation_id": "24915845",
    "app_id": "161076",
    "user_vendor_id": "62615683",
    "user_vendor_name": "jitsecurity",
}
DEV_ASSET: Mapping[str, str] = {
    "asset_id": "5b0e6c1d-2f3a-4b8e-9d47-0c6a1e2f3b4d",
    "tenant_id": DEV_TENANT,
    "asset_name": "demo-service",
    "asset_type": "repo",
    "vendor": "github",
    "owner": "dev-org",
    "installation_id": "10000001",
    "app_id": "161076",
    "user_vendor_id": "10000002",
    "user_vendor_name": "dev-org",
}
ASSETS = (SEED_ASSET, DEV_ASSET)


@dataclass(frozen=True)
class Control:
    plan_item_slug: str
    workflow_slug: str
    job_name: str
    step_name: str
    image: str
    params: Mapping[str, str]


CONTROLS = (
    Control(
        "item-code-vulnerability",
        "workflow-sast",
        "static-code-analysis-python",
        "Run Bandit",
        "ghcr.io/jitsecurity-controls/control-bandit-slim:latest",
        {"args": "-r /code -f json -q -ll -iii"},
    ),
    Control(
        "item-secret-detection",
        "workflow-secret-detection",
        "secret-detection",
        "Run Gitleaks",
        "ghcr.io/jitsecurity-controls/control-gitleaks-alpine:latest",
        {"args": "detect --source /code -v --report-format json"},
    ),
    Control(
        "item-dependency-check",
        "workflow-sca",
        "software-component-analysis",
        "Run OSV-Scanner",
        "ghcr.io/jitsecurity-controls/control-osv-scanner-alpine:latest",
        {"args": "--format json -r /code"},
    ),
)


@dataclass(frozen=True)
class DemoJob:
    """One trigger of the demo, and whether its stand-in runner fails it."""

    tenant_id: str
    jit_event_id: str
    job_runner: str
    fails: bool
    trigger: Mapping[str, Any]


def demo_jobs(
    with_github: bool = True, new_id: Callable[[], str] = lambda: str(uuid.uuid4())
) -> list[DemoJob]:
    """A trigger per control and asset, runners alternating (all topic-fed without `with_github`),
    every FAIL_EVERY-th failing; fresh jit_event_ids from `new_id`."""
    jobs: list[DemoJob] = []
    for asset in ASSETS:
        for control in CONTROLS:
            index = len(jobs)
            github = with_github and index % 2 == 0
            runner = GITHUB_ACTIONS if github else TOPIC_RUNNER
            trigger = trigger_document(asset, control, new_id(), runner)
            fails = index % FAIL_EVERY == FAIL_EVERY - 1
            jobs.append(DemoJob(asset["tenant_id"], trigger["jit_event_id"], runner, fails, trigger))
    return jobs


def trigger_document(
    asset: Mapping[str, str], control: Control, jit_event_id: str, runner: str
) -> dict[str, Any]:
    """A trigger as the trigger service publishes it (the seed's example item, without its keys)."""
    return {
        "tenant_id": asset["tenant_id"],
        "jit_event_id": jit_event_id,
        "jit_event_name": "pull_request_created",
        "asset_id": asset["asset_id"],
        "plan_slug": "jit-plan",
        "plan_item_slug": control.plan_item_slug,
        "workflow_slug": control.workflow_slug,
        "job_name": control.job_name,
        "steps": [{"name": control.step_name, "uses": control.image, "params": dict(control.params)}],
        "job_runner": runner,
        "additional_attributes": github_attributes(asset),
    }


def github_attributes(asset: Mapping[str, str]) -> dict[str, Any]:
    """The seed example's additional_attributes for `asset`: complete enough to dispatch to GitHub."""
    return {
        "owner": asset["owner"],
        "user_vendor_name": asset["user_vendor_name"],
        "original_repository": asset["asset_name"],
        "user_vendor_id": asset["user_vendor_id"],
        "languages": ["python", "any"],
        "pull_request_number": "22",
        "installation_id": asset["installation_id"],
        "commits": {
            "head_sha": "d3ee6efdf02df6fbfef28f916c359b23e9131c1a",
            "base_sha": "045f333e854d65ba6aa04c9a27b8386a377455f4",
        },
        "type": "AdditionalAttributesCode",
        "app_id": asset["app_id"],
        "branch": "main",
    }
