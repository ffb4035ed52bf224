"""Driving the service as a user would: its worker as a process, records in, records and items out."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr

from execution_stream.adapters.dynamodb_repository import DynamoDBExecutionRepository, open_repository
from execution_stream.adapters.kafka_topic_reader import READ_UNCOMMITTED, KafkaTopicReader
from execution_stream.dev import group_is_stable
from execution_stream.dev_stack.github_standin import GithubStandin, running_github_standin
from execution_stream.dev_stack.local_github import AppKey
from execution_stream.provisioning import provision
from execution_stream.settings import Settings

GITHUB_APP_ID = "161076"
T = TypeVar("T")


@dataclass
class WorkerProcess:
    """`execution-stream worker` in a process of its own, its output in a log file."""

    settings: Settings
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    expected_exit: bool = False

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.settings.to_environment()}

    def start(self) -> None:
        environment = self.environment()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "execution_stream", "worker"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,
            )

    def stop(self, timeout: float = 60) -> int:
        self.expected_exit = True
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        self.expected_exit = True
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 60) -> str:
        """The warnings and errors, then the last lines: info lines would bury what went wrong."""
        every = self.log_path.read_text(errors="replace").splitlines()
        notable = [
            line
            for line in every[:-lines]
            if '"level": "info"' not in line and '"level": "debug"' not in line
        ]
        return "\n".join([*notable[-200:], *every[-lines:]])


async def produce(settings: Settings, topic: str, records: Sequence[tuple[str | None, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, key=key.encode() if key is not None else None, value=value)
        await producer.flush()
    finally:
        await producer.stop()


def as_json(document: Any) -> bytes:
    return json.dumps(document).encode()


@dataclass
class TopicReader:
    """Reads a topic from its beginning, outside any group, and keeps every record it saw."""

    settings: Settings
    topic: str
    records: list[ConsumerRecord[bytes, bytes]] = field(default_factory=list)
    _reader: KafkaTopicReader | None = None

    async def start(self) -> None:
        self._reader = KafkaTopicReader(
            self.settings.kafka_bootstrap_servers, [self.topic], isolation_level=READ_UNCOMMITTED
        )
        await self._reader.start()

    async def stop(self) -> None:
        if self._reader is not None:
            await self._reader.stop()

    async def poll(self) -> None:
        assert self._reader is not None
        batches = await self._reader.poll(timeout_ms=200)
        for batch in batches.values():
            self.records.extend(batch)

    def values(self) -> list[Any]:
        return [json.loads(r.value) for r in self.records if r.value]

    def headers_of(self, record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
        return {name: value.decode() for name, value in record.headers}

    async def wait_for(self, done: Callable[[TopicReader], bool], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not done(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {seconds}s; {len(self.records)} records seen")
            await self.poll()


async def read_topic(settings: Settings, topic: str, quiet_polls: int = 3) -> TopicReader:
    """A topic read from its beginning until `quiet_polls` polls in a row bring nothing new."""
    reader = TopicReader(settings, topic)
    await reader.start()
    try:
        quiet = 0
        while quiet < quiet_polls:
            seen = len(reader.records)
            await reader.poll()
            quiet = quiet + 1 if len(reader.records) == seen else 0
    finally:
        await reader.stop()
    return reader


async def eventually(check: Callable[[], Awaitable[T | None]], seconds: float, what: str) -> T:
    """The first truthy result of `check`, polled for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds}s")
        await asyncio.sleep(0.2)


@dataclass
class Pipeline:
    """Topics and table provisioned, a GitHub stand-in, and the workers started on them."""

    settings: Settings
    github: GithubStandin
    repository: DynamoDBExecutionRepository
    log_dir: Path
    workers: list[WorkerProcess]

    def start_worker(self, **overrides: object) -> WorkerProcess:
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        worker = WorkerProcess(settings, self.log_dir / f"worker-{len(self.workers)}.log")
        self.workers.append(worker)
        worker.start()
        return worker

    async def eventually(self, check: Callable[[], Awaitable[T | None]], what: str, seconds: float = 60) -> T:
        """Like `eventually`, failing at once with the logs when a worker died."""

        async def alive_and(check: Callable[[], Awaitable[T | None]] = check) -> T | None:
            dead = [w for w in self.workers if w.process is not None and w.process.poll() is not None]
            if dead and not any(w.expected_exit for w in dead):
                raise AssertionError(f"a worker exited\n{self.logs()}")
            return await check()

        return await eventually(alive_and, seconds, what)

    def logs(self) -> str:
        return "\n".join(f"--- {w.log_path.name}\n{w.log_tail()}" for w in self.workers)


@asynccontextmanager
async def open_pipeline(settings: Settings, app_key: AppKey, log_dir: Path) -> AsyncIterator[Pipeline]:
    """Topics and table provisioned, a GitHub stand-in; every worker started is killed at the end."""
    async with running_github_standin(GITHUB_APP_ID, app_key.public_pem) as github:
        settings = settings.model_copy(
            update={"github_api_url": github.url, "github_app_private_key": SecretStr(app_key.private_pem)}
        )
        await provision(settings)
        async with open_repository(settings) as repository:
            running = Pipeline(settings, github, repository, log_dir, [])
            try:
                yield running
            finally:
                for worker in running.workers:
                    worker.kill()
                print(running.logs())  # pytest shows it when the test failed


async def group_stable(settings: Settings) -> bool:
    """Whether the worker's consumer group is stable (not rebalancing)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        return await group_is_stable(admin, settings.consumer_group)
    finally:
        await admin.close()
