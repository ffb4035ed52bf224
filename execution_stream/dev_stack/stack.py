"""The Kafka broker and DynamoDB endpoint that `dev` and the tests run against.

Each is, in this order of preference: the one the environment names (nothing is started), a
container where a Docker engine really answers (moto's image for DynamoDB), or a local process: the
Java broker, and dynoxide or moto's server as `Settings.local_dynamodb` chooses (dynoxide by default).

For people (`dev`), the local broker and endpoint take the conventional ports when they are free
(`Settings.dev_kafka_port`, `_dev_dynamodb_port`), and where no GitHub App is configured a local
GitHub stand-in is started; the tests' stacks take free ports and have no GitHub of their own.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from execution_stream.dev_stack import processes
from execution_stream.dev_stack.dynoxide_server import DynoxideServer
from execution_stream.dev_stack.kafka_broker import KafkaBroker
from execution_stream.dev_stack.local_dynamodb import LocalDynamoDB
from execution_stream.dev_stack.local_github import LocalGithub
from execution_stream.dev_stack.moto_server import MotoServer
from execution_stream.settings import Settings

# What `Settings.local_dynamodb` may name: the server started where no endpoint is named.
LOCAL_DYNAMODB_SERVERS: dict[str, Callable[..., LocalDynamoDB]] = {
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
    github: LocalGithub | None = None

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
def dev_stack(
    settings: Settings, work_dir: Path | None = None, *, for_people: bool = False
) -> Iterator[DevStack]:
    root = work_dir or Path(tempfile.mkdtemp(prefix="execution-stream-"))
    stack = start_local_stack(settings, root, for_people=for_people)
    try:
        yield stack
    finally:
        stack.stop()


def start_local_stack(settings: Settings, work_dir: Path, *, for_people: bool = False) -> DevStack:
    named = settings.model_fields_set
    use_docker = not {"kafka_bootstrap_servers", "dynamodb_endpoint_url"} <= named and docker_engine_answers()
    plan = _Plan(settings, work_dir, use_docker, for_people)
    stack = DevStack(Endpoints("", ""), None, None, [])
    try:
        kafka = _kafka(plan, stack)
        dynamodb = _dynamodb(plan, stack)
        if for_people and not (settings.github_app_id and settings.github_app_private_key):
            stack.github = LocalGithub(work_dir / "github")
            stack.started.append(stack.github)
            stack.github.start()
    except BaseException:
        stack.stop()
        raise
    stack.endpoints = Endpoints(kafka, dynamodb)
    return stack


@dataclass(frozen=True)
class _Plan:
    settings: Settings
    work_dir: Path
    use_docker: bool
    for_people: bool

    def named(self, setting: str) -> bool:
        return setting in self.settings.model_fields_set

    def port(self, conventional: int) -> int:
        """People get the conventional port when it is free; tests always a free one."""
        return processes.preferred_or_free(conventional if self.for_people else 0)


def _kafka(plan: _Plan, stack: DevStack) -> str:
    if plan.named("kafka_bootstrap_servers"):
        return plan.settings.kafka_bootstrap_servers
    if plan.use_docker:
        from execution_stream.dev_stack.containers import KafkaContainerService  # noqa: PLC0415

        container = KafkaContainerService()
        stack.started.append(container)
        container.start()
        return container.bootstrap_servers
    broker = KafkaBroker(plan.work_dir / "kafka", port=plan.port(plan.settings.dev_kafka_port))
    stack.started.append(broker)
    stack.broker = broker
    broker.start()
    return broker.bootstrap_servers


def _dynamodb(plan: _Plan, stack: DevStack) -> str:
    settings = plan.settings
    if plan.named("dynamodb_endpoint_url") and settings.dynamodb_endpoint_url:
        return settings.dynamodb_endpoint_url
    if plan.use_docker:
        from execution_stream.dev_stack.containers import DynamoDBContainerService  # noqa: PLC0415

        container = DynamoDBContainerService()
        stack.started.append(container)
        container.start()
        return container.endpoint_url
    server_type = LOCAL_DYNAMODB_SERVERS[settings.local_dynamodb]
    server = server_type(plan.work_dir / "dynamodb", port=plan.port(settings.dev_dynamodb_port))
    stack.started.append(server)
    stack.dynamodb = server
    server.start()
    return server.endpoint_url
