"""The Kafka broker and DynamoDB endpoint that `dev` and the tests run against.

Each is, in this order of preference: the one the environment names (nothing is started), a
container where a Docker engine really answers (moto's image for DynamoDB), or a local process: the
Java broker, and dynoxide or moto's server as `Settings.local_dynamodb` chooses (dynoxide by default).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from execution_stream.dev_stack.dynoxide_server import DynoxideServer
from execution_stream.dev_stack.kafka_broker import KafkaBroker
from execution_stream.dev_stack.local_dynamodb import LocalDynamoDB
from execution_stream.dev_stack.moto_server import MotoServer
from execution_stream.settings import Settings

# What `Settings.local_dynamodb` may name: the server started where no endpoint is named.
LOCAL_DYNAMODB_SERVERS: dict[str, Callable[[Path], LocalDynamoDB]] = {
    "dynoxide": DynoxideServer,
    "moto": MotoServer,
}


class Service(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap_servers: str
    dynamodb_endpoint_url: str

    def as_environment(self) -> dict[str, str]:
        return {
            "EXECUTION_STREAM_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "EXECUTION_STREAM_DYNAMODB_ENDPOINT_URL": self.dynamodb_endpoint_url,
        }


@dataclass
class DevStack:
    endpoints: Endpoints
    broker: KafkaBroker | None
    dynamodb: LocalDynamoDB | None
    started: list[Service]

    def stop(self) -> None:
        for service in reversed(self.started):
            with contextlib.suppress(Exception):
                service.stop()
        self.started.clear()


def docker_engine_answers() -> bool:
    """A real ping: `docker --version` answers on machines that have only the client."""
    try:
        import docker  # noqa: PLC0415 - optional, and slow to import

        client = docker.from_env(timeout=3)
        return bool(client.ping())
    except Exception:
        return False


@contextlib.contextmanager
def dev_stack(settings: Settings, work_dir: Path | None = None) -> Iterator[DevStack]:
    root = work_dir or Path(tempfile.mkdtemp(prefix="execution-stream-"))
    stack = start_local_stack(settings, root)
    try:
        yield stack
    finally:
        stack.stop()


def start_local_stack(settings: Settings, work_dir: Path) -> DevStack:
    named = settings.model_fields_set
    use_docker = not {"kafka_bootstrap_servers", "dynamodb_endpoint_url"} <= named and docker_engine_answers()
    stack = DevStack(Endpoints("", ""), None, None, [])
    try:
        kafka = _kafka(settings, work_dir, stack, named, use_docker)
        dynamodb = _dynamodb(settings, work_dir, stack, named, use_docker)
    except BaseException:
        stack.stop()
        raise
    stack.endpoints = Endpoints(kafka, dynamodb)
    return stack


def _kafka(settings: Settings, work_dir: Path, stack: DevStack, named: set[str], use_docker: bool) -> str:
    if "kafka_bootstrap_servers" in named:
        return settings.kafka_bootstrap_servers
    if use_docker:
        from execution_stream.dev_stack.containers import KafkaContainerService  # noqa: PLC0415

        container = KafkaContainerService()
        stack.started.append(container)
        container.start()
        return container.bootstrap_servers
    broker = KafkaBroker(work_dir / "kafka")
    stack.started.append(broker)
    stack.broker = broker
    broker.start()
    return broker.bootstrap_servers


def _dynamodb(settings: Settings, work_dir: Path, stack: DevStack, named: set[str], use_docker: bool) -> str:
    if "dynamodb_endpoint_url" in named and settings.dynamodb_endpoint_url:
        return settings.dynamodb_endpoint_url
    if use_docker:
        from execution_stream.dev_stack.containers import DynamoDBContainerService  # noqa: PLC0415

        container = DynamoDBContainerService()
        stack.started.append(container)
        container.start()
        return container.endpoint_url
    server = LOCAL_DYNAMODB_SERVERS[settings.local_dynamodb](work_dir / "dynamodb")
    stack.started.append(server)
    stack.dynamodb = server
    server.start()
    return server.endpoint_url
