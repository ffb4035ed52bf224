"""`execution-stream publish-trigger`: trigger (or asset) documents, validated as the worker decodes
them, then published with an idempotent producer.

The input is one JSON document, an array of documents, or documents one after another (JSON Lines or
concatenated). Every document is checked before any is sent: one invalid document, and nothing is
published.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import NoReturn, TextIO, TypeVar

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from execution_stream.adapters import kafka_calls
from execution_stream.adapters.kafka_topic_reader import partitions_of
from execution_stream.domain.models import Asset
from execution_stream.pipeline.triggers import RejectedRecordError, decode_trigger
from execution_stream.settings import Settings

T = TypeVar("T")
STANDARD_INPUT = "-"
_JSON_WHITESPACE = " \t\n\r"


class Kind(StrEnum):
    TRIGGER = "trigger"
    ASSET = "asset"


class InvalidDocumentsError(ValueError):
    """Some documents cannot be published; one problem per document, each naming it."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class PublishError(RuntimeError):
    pass


@dataclass(frozen=True)
class Checked:
    """A valid document as it goes on the wire, and what names it in the output."""

    key: str
    value: bytes
    label: str


@dataclass(frozen=True)
class Published:
    topic: str
    partition: int
    offset: int
    key: str
    label: str

    def line(self) -> str:
        return f"published {self.topic}[{self.partition}]@{self.offset} key={self.key} {self.label}"


def run_publish(settings: Settings, source: str, kind: Kind, out: TextIO = sys.stdout) -> int:
    # aiokafka logs each failed connection attempt; the one error that matters reaches the CLI's main.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    text = sys.stdin.read() if source == STANDARD_INPUT else Path(source).read_text(encoding="utf-8")
    checked = check_documents(read_documents(text), kind)
    for published in asyncio.run(publish(settings, topic_of(settings, kind), checked)):
        print(published.line(), file=out, flush=True)
    return 0


def topic_of(settings: Settings, kind: Kind) -> str:
    return settings.topic_assets if kind is Kind.ASSET else settings.topic_trigger_execution


def read_documents(text: str) -> list[object]:
    """The documents of `text`: one, an array of them, or several one after another."""
    decoder = json.JSONDecoder(parse_constant=_not_json)
    documents: list[object] = []
    position = _after_space(text, 0)
    while position < len(text):
        try:
            value, position = decoder.raw_decode(text, position)
        except ValueError as error:
            raise InvalidDocumentsError([f"document {len(documents) + 1}: not JSON: {error}"]) from None
        documents.extend(value if isinstance(value, list) else [value])
        position = _after_space(text, position)
    if not documents:
        raise InvalidDocumentsError(["the input holds no document"])
    return documents


def _after_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in _JSON_WHITESPACE:
        position += 1
    return position


def _not_json(constant: str) -> NoReturn:
    # Python's json reads NaN and Infinity; no other JSON reader, nor the worker's models, would.
    raise ValueError(f"{constant} is not a JSON value")


def check_documents(documents: Sequence[object], kind: Kind) -> list[Checked]:
    """Each document as it will be published, or InvalidDocumentsError naming every invalid one."""
    checked: list[Checked] = []
    problems: list[str] = []
    for number, document in enumerate(documents, start=1):
        try:
            checked.append(check_document(document, kind))
        except ValueError as error:
            problems.append(f"document {number}: {error}")
    if problems:
        raise InvalidDocumentsError(problems)
    return checked


def check_document(document: object, kind: Kind) -> Checked:
    """The document as the worker would decode it (ValueError says why it would not)."""
    value = json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    if kind is Kind.ASSET:
        return _check_asset(value)
    try:
        event = decode_trigger(value)
    except RejectedRecordError as rejected:
        raise ValueError(str(rejected)) from None
    return Checked(event.tenant_id, value, f"jit_event_id={event.jit_event_id}")


def _check_asset(value: bytes) -> Checked:
    # As the worker's asset cache reads the assets topic.
    try:
        asset = Asset.model_validate_json(value)
    except ValidationError as error:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in error.errors()[:10]]
        raise ValueError("; ".join(problems)) from None
    return Checked(asset.asset_id, value, f"tenant_id={asset.tenant_id}")


async def publish(settings: Settings, topic: str, records: Sequence[Checked]) -> list[Published]:
    """Each record sent to `topic`, every delivery acknowledged by all in-sync replicas."""
    with kafka_errors(settings, f"publishing to {topic!r}"):
        if not await bounded(settings, partitions_of(settings.kafka_bootstrap_servers, [topic])):
            raise PublishError(
                f"topic {topic!r} does not exist at {settings.kafka_bootstrap_servers}: "
                "run `execution-stream init`"
            )
        async with idempotent_producer(settings) as producer:
            deliveries = [await producer.send(topic, r.value, key=r.key.encode()) for r in records]
            sent = await bounded(settings, asyncio.gather(*deliveries))
    return [
        Published(topic, metadata.partition, metadata.offset, record.key, record.label)
        for record, metadata in zip(records, sent, strict=True)
    ]


@contextlib.asynccontextmanager
async def idempotent_producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    """A producer that writes each record once (acks=all, idempotence), started within the connect
    timeout."""
    producer = kafka_calls.idempotent_producer(
        settings.kafka_bootstrap_servers, settings.kafka_connect_timeout_seconds
    )
    try:
        await bounded(settings, producer.start())
        yield producer
    finally:
        await producer.stop()


async def bounded(settings: Settings, call: Awaitable[T]) -> T:
    return await kafka_calls.bounded(call, settings.kafka_connect_timeout_seconds)


def kafka_errors(settings: Settings, doing: str) -> contextlib.AbstractContextManager[None]:
    servers, timeout = settings.kafka_bootstrap_servers, settings.kafka_connect_timeout_seconds
    return kafka_calls.kafka_errors(servers, timeout, doing)
