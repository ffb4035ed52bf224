"""`execution-stream dev` as a user runs it: a ready line, usable endpoints, nothing left after Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import jwt
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from execution_stream.dev_stack.processes import port_is_free
from execution_stream.settings import Settings
from tests.support.dev_command import environment_without_a_stack, running_dev
from tests.support.ledger import asset_record, trigger_record
from tests.support.pipeline import eventually, produce

JWT_SECRET = "dev-command-test-secret-of-32-bytes-or-more"


CONVENTIONAL_PORTS = {"kafka": 9092, "dynamodb": 8000, "api": 8080, "worker": 6066}


@dataclass(frozen=True)
class DevRun:
    process: subprocess.Popen[str]
    endpoints: dict[str, str]
    environment: dict[str, str]
    env_file: Path
    free_before: dict[str, bool]
    held_api_port: bool


@pytest.fixture(scope="module")
def dev_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevRun]:
    """`dev` with the API's conventional port taken by someone else, the others as they are."""
    work = tmp_path_factory.mktemp("dev-command")
    env_file = work / "dev.env"
    environment = environment_without_a_stack(env_file, EXECUTION_STREAM_JWT_SECRET=JWT_SECRET)
    with _listening_on(CONVENTIONAL_PORTS["api"]) as holding_api_port:
        free_before = {name: port_is_free(port) for name, port in CONVENTIONAL_PORTS.items()}
        with running_dev(environment, work / "dev.log") as (process, endpoints):
            yield DevRun(process, endpoints, environment, env_file, free_before, holding_api_port)


@contextlib.contextmanager
def _listening_on(port: int) -> Iterator[bool]:
    """Holds `port` where it is free (another program's server): True; leaves it be where it is taken."""
    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", port))
            taken.listen()
        except OSError:
            yield False
        else:
            yield True


async def test_the_broker_serves_clients_from_another_process(
    dev_run: DevRun,
) -> None:
    endpoints = dev_run.endpoints
    producer = AIOKafkaProducer(bootstrap_servers=endpoints["kafka"])
    await producer.start()
    try:
        await producer.send_and_wait("trigger-execution", key=b"tenant", value=b"hello")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        "trigger-execution",
        bootstrap_servers=endpoints["kafka"],
        group_id="dev-test",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000)
    finally:
        await consumer.stop()
    assert [r.value for records in batches.values() for r in records] == [b"hello"]


def test_the_table_and_the_api_answer(dev_run: DevRun) -> None:
    endpoints = dev_run.endpoints
    client = boto3.client("dynamodb", endpoint_url=endpoints["dynamodb"])
    assert "Executions" in client.list_tables()["TableNames"]
    with urllib.request.urlopen(f"{endpoints['api']}/healthz", timeout=5) as response:
        assert response.status == 200


def test_people_get_the_conventional_ports_where_they_are_free(dev_run: DevRun) -> None:
    ports = {
        "kafka": int(dev_run.endpoints["kafka"].rsplit(":", 1)[1]),
        "dynamodb": int(dev_run.endpoints["dynamodb"].rsplit(":", 1)[1]),
        "api": int(dev_run.endpoints["api"].rsplit(":", 1)[1]),
        "worker": int(_sourced(dev_run, "EXECUTION_STREAM_WORKER_WEB_PORT")),
    }
    for name, conventional in CONVENTIONAL_PORTS.items():
        assert (ports[name] == conventional) == dev_run.free_before[name], (name, ports[name])
    assert not (dev_run.held_api_port and ports["api"] == CONVENTIONAL_PORTS["api"])
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['worker']}/healthz", timeout=5) as response:
        assert response.status == 200


def test_dev_env_gives_another_shell_the_running_stack(dev_run: DevRun) -> None:
    assert _sourced(dev_run, "EXECUTION_STREAM_KAFKA_BOOTSTRAP_SERVERS") == dev_run.endpoints["kafka"]
    assert _sourced(dev_run, "EXECUTION_STREAM_DYNAMODB_ENDPOINT_URL") == dev_run.endpoints["dynamodb"]
    assert _sourced(dev_run, "EXECUTION_STREAM_GITHUB_API_URL") == dev_run.endpoints["github"]
    assert _sourced(dev_run, "API") == dev_run.endpoints["api"]
    token = _sourced(dev_run, "TOKEN")
    assert jwt.decode(token, JWT_SECRET, algorithms=["HS256"])["tenant_id"] == "dev-tenant"
    lag = _in_sourced_shell(dev_run, "execution-stream lag --json")
    assert lag.returncode == 0, lag.stderr
    report = json.loads(lag.stdout.splitlines()[0])
    assert report["bootstrap_servers"] == dev_run.endpoints["kafka"]
    assert [(group["group"], group["state"]) for group in report["groups"]] == [
        ("execution-stream", "Stable")
    ]


def test_dev_serves_the_executions_page_and_links_it_with_its_token(dev_run: DevRun) -> None:
    api = dev_run.endpoints["api"]
    assert _sourced(dev_run, "UI") == f"{api}/ui/#token={_sourced(dev_run, 'TOKEN')}"
    with urllib.request.urlopen(f"{api}/ui/", timeout=5) as response:
        assert response.status == 200
        assert response.headers.get_content_type() == "text/html"
        assert b"<title>Executions" in response.read()


def _sourced(dev_run: DevRun, name: str) -> str:
    shell = _in_sourced_shell(dev_run, f'printf %s "${name}"')
    assert shell.returncode == 0, shell.stderr
    return shell.stdout


def _in_sourced_shell(dev_run: DevRun, command: str) -> subprocess.CompletedProcess[str]:
    """`command` in a new shell that sourced `dev --env`, with nothing of the stack in its environment."""
    environment = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/"),
        "EXECUTION_STREAM_DEV_ENV_FILE": str(dev_run.env_file),
    }
    script = f". <(execution-stream dev --env) && {command}"
    return subprocess.run(
        ["bash", "-c", script], env=environment, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(("runner", "event"), [("jit_runner", 1), ("github_actions", 2)])
async def test_a_trigger_becomes_an_execution_the_api_lists(dev_run: DevRun, runner: str, event: int) -> None:
    endpoints = dev_run.endpoints
    settings = Settings(kafka_bootstrap_servers=endpoints["kafka"])
    await produce(settings, settings.topic_assets, [asset_record("dev-tenant", "asset-dev-tenant")])
    await produce(
        settings, settings.topic_trigger_execution, [trigger_record("dev-tenant", event, runner=runner)]
    )
    token = jwt.encode({"tenant_id": "dev-tenant", "exp": int(time.time()) + 600}, JWT_SECRET)

    def list_dispatched() -> list[dict[str, object]]:
        request = urllib.request.Request(
            f"{endpoints['api']}/executions?status=dispatched", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            items: list[dict[str, object]] = json.loads(response.read())["data"]
        return [item for item in items if item["job_runner"] == runner]

    async def listed() -> list[dict[str, object]] | None:
        return await asyncio.to_thread(list_dispatched) or None

    items = await eventually(listed, 60, "the execution listed as dispatched")
    assert [(item["tenant_id"], item["jit_event_id"], item["status"]) for item in items] == [
        ("dev-tenant", f"event-{event}", "dispatched")
    ]
    if runner == "github_actions":
        dispatches = await asyncio.to_thread(_get_json, f"{endpoints['github']}/_control/dispatches")
        assert [dispatch["inputs"]["execution_id"] for dispatch in dispatches] == [items[0]["execution_id"]]


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_ctrl_c_stops_everything(dev_run: DevRun) -> None:
    process = dev_run.process
    children = psutil.Process(process.pid).children(recursive=True)
    started = {child.pid for child in children}
    assert any("java" in " ".join(child.cmdline()) for child in children)
    assert len(started) >= 4

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0

    _, alive = psutil.wait_procs([psutil.Process(pid) for pid in started if psutil.pid_exists(pid)], 10)
    assert not alive, [p.cmdline() for p in alive]
    assert not dev_run.env_file.exists()
    stopped = subprocess.run(
        [sys.executable, "-m", "execution_stream", "dev", "--env"],
        env=dev_run.environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert stopped.returncode == 1
    assert (
        stopped.stderr
        == f"execution-stream dev: no execution-stream dev is running ({dev_run.env_file} does not exist)\n"
    )
