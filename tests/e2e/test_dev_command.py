"""`execution-stream dev` as a user runs it: a ready line, usable endpoints, nothing left after Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import boto3
import jwt
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from execution_stream.settings import Settings
from tests.support.ledger import asset_record, trigger_record
from tests.support.pipeline import eventually, produce

READY_TIMEOUT_SECONDS = 120
JWT_SECRET = "dev-command-test-secret-of-32-bytes-or-more"


@pytest.fixture(scope="module")
def dev_process() -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"EXECUTION_STREAM_KAFKA_BOOTSTRAP_SERVERS", "EXECUTION_STREAM_DYNAMODB_ENDPOINT_URL"}
    }
    environment["EXECUTION_STREAM_JWT_SECRET"] = JWT_SECRET
    process = subprocess.Popen(
        [sys.executable, "-m", "execution_stream", "dev"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=environment,
    )
    try:
        yield process, _read_ready_line(process)
    finally:
        if process.poll() is None:
            process.kill()


def _read_ready_line(process: subprocess.Popen[str]) -> dict[str, str]:
    assert process.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            pytest.fail(f"dev exited ({process.wait()}) before printing its ready line")
        if line.startswith("ready "):
            endpoints: dict[str, str] = json.loads(line.removeprefix("ready "))
            return endpoints
    pytest.fail("no ready line")


async def test_the_broker_serves_clients_from_another_process(
    dev_process: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    endpoints = dev_process[1]
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


def test_the_table_and_the_api_answer(dev_process: tuple[subprocess.Popen[str], dict[str, str]]) -> None:
    endpoints = dev_process[1]
    client = boto3.client("dynamodb", endpoint_url=endpoints["dynamodb"])
    assert "Executions" in client.list_tables()["TableNames"]
    with urllib.request.urlopen(f"{endpoints['api']}/healthz", timeout=5) as response:
        assert response.status == 200


async def test_a_trigger_becomes_an_execution_the_api_lists(
    dev_process: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    endpoints = dev_process[1]
    settings = Settings(kafka_bootstrap_servers=endpoints["kafka"])
    await produce(settings, settings.topic_assets, [asset_record("dev-tenant", "asset-dev-tenant")])
    await produce(settings, settings.topic_trigger_execution, [trigger_record("dev-tenant", 1)])
    token = jwt.encode({"tenant_id": "dev-tenant", "exp": int(time.time()) + 600}, JWT_SECRET)

    def list_dispatched() -> list[dict[str, object]]:
        request = urllib.request.Request(
            f"{endpoints['api']}/executions?status=dispatched", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            items: list[dict[str, object]] = json.loads(response.read())["data"]
        return items

    async def listed() -> list[dict[str, object]] | None:
        return await asyncio.to_thread(list_dispatched) or None

    items = await eventually(listed, 60, "the execution listed as dispatched")
    assert [(item["tenant_id"], item["jit_event_id"], item["status"]) for item in items] == [
        ("dev-tenant", "event-1", "dispatched")
    ]


def test_ctrl_c_stops_everything(dev_process: tuple[subprocess.Popen[str], dict[str, str]]) -> None:
    process = dev_process[0]
    children = psutil.Process(process.pid).children(recursive=True)
    started = {child.pid for child in children}
    assert any("java" in " ".join(child.cmdline()) for child in children)
    assert len(started) >= 4

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0

    _, alive = psutil.wait_procs([psutil.Process(pid) for pid in started if psutil.pid_exists(pid)], 10)
    assert not alive, [p.cmdline() for p in alive]
