"""The broker and the DynamoDB endpoints a run measures, and what each is (versions, processes).

The broker is the one EXECUTION_STREAM_KAFKA_BOOTSTRAP_SERVERS names, or a local Kafka 4 broker
started once for the whole run. The endpoints are the local servers `--endpoints` names (dynoxide
and moto's, started and stopped one after the other), or only the one
EXECUTION_STREAM_DYNAMODB_ENDPOINT_URL names, labelled by its URL.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil

from execution_stream.dev_stack.dynoxide_server import BINARY as DYNOXIDE_BINARY
from execution_stream.dev_stack.kafka_broker import KafkaBroker
from execution_stream.dev_stack.kafka_jars import KAFKA_JARS_DIR
from execution_stream.dev_stack.stack import LOCAL_DYNAMODB_SERVERS
from execution_stream.settings import Settings

LOCAL = tuple(LOCAL_DYNAMODB_SERVERS)
MOTO = "moto"
PACKAGES = ("aiobotocore", "aiokafka", "aiohttp", "faust-streaming", "moto", "execution-stream")


@dataclass(frozen=True)
class Endpoint:
    label: str
    url: str
    # The server's process, where this run started it: its CPU is accounted by its pid.
    process: psutil.Process | None
    # A log with one line per request it served (moto's), read as a cross-check during P.
    request_log: Path | None
    description: str

    @property
    def python_server(self) -> bool:
        """py-spy can sample it (`--profile`)."""
        return self.label == MOTO


def endpoint_names(settings: Settings, requested: Sequence[str]) -> list[str]:
    """The URL the environment names, alone, or the local servers requested (checked)."""
    if "dynamodb_endpoint_url" in settings.model_fields_set and settings.dynamodb_endpoint_url:
        return [settings.dynamodb_endpoint_url]
    unknown = [name for name in requested if name not in LOCAL]
    if unknown or not requested:
        raise SystemExit(f"--endpoints: choose among {', '.join(LOCAL)} (not {', '.join(unknown) or 'none'})")
    return list(dict.fromkeys(requested))


@contextlib.contextmanager
def running_endpoint(name: str, work_dir: Path) -> Iterator[Endpoint]:
    """The local server `name` started in `work_dir` and stopped on the way out; a URL as it is."""
    if name not in LOCAL:
        yield Endpoint(name, name, None, None, "named by EXECUTION_STREAM_DYNAMODB_ENDPOINT_URL")
        return
    server = LOCAL_DYNAMODB_SERVERS[name](work_dir / "dynamodb")
    try:
        server.start()
        assert server.pid is not None
        log = server.log_path if name == MOTO else None
        description = f"{server_version(name)}, started for the run"
        yield Endpoint(name, server.endpoint_url, psutil.Process(server.pid), log, description)
    finally:
        server.stop()


def server_version(name: str) -> str:
    if name == MOTO:
        return f"moto {package_version('moto')} (its server, this project's moto_dynamodb.py)"
    result = subprocess.run([str(DYNOXIDE_BINARY), "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip() or "dynoxide (version unknown)"


@contextlib.contextmanager
def kafka_broker(settings: Settings, work_dir: Path) -> Iterator[tuple[str, str]]:
    """The bootstrap servers and how the broker came to be: named, or started for the run."""
    if "kafka_bootstrap_servers" in settings.model_fields_set:
        yield settings.kafka_bootstrap_servers, "named by EXECUTION_STREAM_KAFKA_BOOTSTRAP_SERVERS"
        return
    broker = KafkaBroker(work_dir)
    try:
        broker.start()
        yield broker.bootstrap_servers, f"Kafka {kafka_version()} broker, started for the run"
    finally:
        broker.stop()


def kafka_version() -> str:
    jars = sorted(KAFKA_JARS_DIR.glob("kafka_2.13-*.jar"))
    return jars[0].stem.removeprefix("kafka_2.13-") if jars else "?"


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    return {name: package_version(name) for name in PACKAGES}
