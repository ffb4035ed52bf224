"""`make run` in one shell, `make demo` in another: `execution-stream dev`, then `execution-stream demo`
on it; every execution the demo starts ends, and the API lists each with the status the demo saw."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from execution_stream.dev_stack.dev_env_file import read_dev_environment
from tests.support.api import token
from tests.support.dev_command import environment_without_a_stack, running_dev

DEMO = (sys.executable, "-m", "execution_stream", "demo")
DEMO_TIMEOUT_SECONDS = 90
SEED_TENANT, DEV_TENANT = "92c4b3cc-ebdb-4662-8dbd-765a2e3b3af4", "dev-tenant"
# `<tenant>  <execution id's head>…  <runner>  [<from> -> ]<to>[  (<error>)]`
CHANGE = re.compile(
    r"(?P<tenant>\S+) +(?P<head>[0-9a-f]{8})… +(?P<runner>\S+) +(?:(?P<before>\w+) -> )?(?P<after>\w+)"
)
SUMMARY = "demo: 6 executions ended (4 completed, 2 failed); the API lists all 6"


@pytest.fixture(scope="module")
def dev_env_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running `execution-stream dev`, and the environment file it wrote."""
    work = tmp_path_factory.mktemp("demo-dev")
    env_file = work / "dev.env"
    environment = environment_without_a_stack(env_file)
    with running_dev(environment, work / "dev.log", "--work-dir", str(work / "stack")):
        yield env_file


def list_executions(api: str, secret: str, tenant: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        f"{api}/executions?limit=100", headers={"Authorization": f"Bearer {token(tenant, key=secret)}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        items: list[dict[str, Any]] = json.loads(response.read())["data"]
    return items


def test_the_demo_s_executions_all_end_and_the_api_lists_each_as_it_ended(dev_env_file: Path) -> None:
    demo = subprocess.run(
        [
            *DEMO,
            "--env-file",
            str(dev_env_file),
            "--work-seconds",
            "1",
            "--timeout",
            str(DEMO_TIMEOUT_SECONDS),
        ],
        capture_output=True,
        text=True,
        env=environment_without_a_stack(None),
        timeout=DEMO_TIMEOUT_SECONDS + 60,
        check=False,
    )

    assert demo.returncode == 0, demo.stdout + demo.stderr
    lines = demo.stdout.splitlines()
    assert lines[-1] == SUMMARY
    assert sum('curl -H "Authorization: Bearer ey' in line for line in lines) == 2, demo.stdout
    changes = [match for line in lines if (match := CHANGE.fullmatch(line.split("  (")[0]))]
    seen = {(m["tenant"], m["head"]): (m["runner"], m["after"]) for m in changes}  # each one's last
    assert len(seen) == 6, demo.stdout
    assert sorted(status for _, status in seen.values()) == ["completed"] * 4 + ["failed"] * 2
    variables = read_dev_environment(dev_env_file)
    api, secret = variables["API"], variables["EXECUTION_STREAM_JWT_SECRET"]
    listed = {
        (tenant, item["execution_id"][:8]): (item["job_runner"], item["status"])
        for tenant in (SEED_TENANT, DEV_TENANT)
        for item in list_executions(api, secret, tenant)
    }
    assert listed == seen
    runners = {(tenant, runner) for (tenant, _), (runner, _) in listed.items()}
    assert runners == {(t, r) for t in (SEED_TENANT, DEV_TENANT) for r in ("github_actions", "jit_runner")}
