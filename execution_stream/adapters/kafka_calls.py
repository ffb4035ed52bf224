"""Calls to Kafka by the command-line tools, each bounded by the connect timeout, their errors as one
line: an unreachable broker names its address, any other Kafka error what was being done."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterator
from typing import TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError

from execution_stream.adapters.kafka_topics import KafkaUnreachableError

T = TypeVar("T")


class KafkaRequestError(RuntimeError):
    """The broker answered a request with an error."""


def idempotent_producer(bootstrap_servers: str, timeout_seconds: float) -> AIOKafkaProducer:
    """A producer that writes each record once (acks=all, idempotence); not started yet."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=int(timeout_seconds * 1000),
    )


async def bounded(call: Awaitable[T], timeout_seconds: float) -> T:
    return await asyncio.wait_for(call, timeout=timeout_seconds)


@contextlib.contextmanager
def kafka_errors(bootstrap_servers: str, timeout_seconds: float, doing: str) -> Iterator[None]:
    try:
        yield
    except (KafkaConnectionError, OSError, TimeoutError) as error:
        raise KafkaUnreachableError(bootstrap_servers, one_line(error, timeout_seconds)) from error
    except KafkaError as error:
        cause = one_line(error, timeout_seconds)
        raise KafkaRequestError(f"{doing} at {bootstrap_servers}: {cause}") from error


def one_line(error: BaseException, timeout_seconds: float) -> str:
    text = str(error) or (f"no answer within {timeout_seconds:g}s" if isinstance(error, TimeoutError) else "")
    return " ".join((text or type(error).__name__).split())
