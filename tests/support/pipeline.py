"""Driving the service as a user would: its worker as a process, records in, records and items out."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from execution_stream.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class AppKey:
    private_pem: str
    public_pem: str


def generate_app_key() -> AppKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return AppKey(private.decode(), public.decode())


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
    _consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers, enable_auto_commit=False
        )
        await self._consumer.start()
        cluster = await self._consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(self.topic) or set()
        assigned = [TopicPartition(self.topic, p) for p in partitions]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_beginning(*assigned)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def poll(self) -> None:
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=200)
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
