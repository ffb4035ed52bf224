"""The demo's executions as the HTTP API lists them, with tokens the demo mints for its tenants."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp

from execution_stream.domain.models import ExecutionStatus
from execution_stream.settings import Settings

PAGE_LIMIT = 100
# The API reads DynamoDB's indexes, which may trail the event that announced a change by a moment.
LISTING_ATTEMPTS = 10
LISTING_RETRY_SECONDS = 0.5
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)


def curl_command(settings: Settings, token: str | None) -> str:
    return f'curl -H "Authorization: Bearer {token or "$TOKEN"}" {settings.api_url()}/executions'


async def api_mismatches(
    settings: Settings, token: str, expected: Mapping[str, ExecutionStatus]
) -> list[str]:
    """What the API lists otherwise than `expected` (execution_id -> status), after a few tries."""
    problems: list[str] = []
    for attempt in range(LISTING_ATTEMPTS):
        if attempt:
            await asyncio.sleep(LISTING_RETRY_SECONDS)
        listed = await listed_statuses(settings.api_url(), token, set(expected))
        problems = mismatches(expected, listed)
        if not problems:
            break
    return problems


def mismatches(expected: Mapping[str, ExecutionStatus], listed: Mapping[str, str]) -> list[str]:
    return [
        f"{execution_id} is {status.value} but the API lists {listed.get(execution_id, 'nothing')}"
        for execution_id, status in expected.items()
        if listed.get(execution_id) != status.value
    ]


async def listed_statuses(url: str, token: str, wanted: set[str]) -> dict[str, str]:
    """The status the API lists for each of `wanted` it finds, page after page until all are found."""
    found: dict[str, str] = {}
    after: str | None = None
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT, headers=headers) as session:
        while True:
            parameters = {"limit": str(PAGE_LIMIT), **({"after": after} if after else {})}
            async with session.get(f"{url}/executions", params=parameters) as response:
                response.raise_for_status()
                body = await response.json()
            found |= {i["execution_id"]: i["status"] for i in body["data"] if i["execution_id"] in wanted}
            after = body["metadata"]["after"]
            if after is None or wanted <= found.keys():
                return found
