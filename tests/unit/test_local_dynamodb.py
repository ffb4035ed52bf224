"""Which DynamoDB server the local stack starts, and what it says when dynoxide cannot be had."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import pytest

from execution_stream.dev_stack import stack
from execution_stream.dev_stack.dynoxide_server import PACKAGE_DIR, DynoxideServer, ensure_dynoxide_binary
from execution_stream.dev_stack.moto_server import MotoServer
from execution_stream.dev_stack.processes import StackError
from execution_stream.settings import InvalidSettingsError, Settings, load_settings

BINARY = Path("/nowhere/dynoxide")


@dataclass
class FakeServer:
    work_dir: Path
    port: int = 1
    events: list[str] = field(default_factory=list)

    @property
    def endpoint_url(self) -> str:
        return f"http://fake/{self.work_dir.name}"

    def start(self) -> None:
        self.events.append("start")

    def stop(self) -> None:
        self.events.append("stop")


class FakeDynoxide(FakeServer):
    pass


class FakeMoto(FakeServer):
    pass


@pytest.fixture
def fake_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack, "LOCAL_DYNAMODB_SERVERS", {"dynoxide": FakeDynoxide, "moto": FakeMoto})
    monkeypatch.setattr(stack, "docker_engine_answers", lambda: False)


def test_dynoxide_is_the_default_and_moto_is_chosen_by_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().local_dynamodb == "dynoxide"
    monkeypatch.setenv("EXECUTION_STREAM_LOCAL_DYNAMODB", "moto")
    assert load_settings().local_dynamodb == "moto"


def test_an_unknown_server_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTION_STREAM_LOCAL_DYNAMODB", "dynamodb-local")
    with pytest.raises(InvalidSettingsError, match="EXECUTION_STREAM_LOCAL_DYNAMODB"):
        load_settings()


def test_every_choice_of_the_setting_has_a_server() -> None:
    choices = get_args(Settings.model_fields["local_dynamodb"].annotation)
    assert {"dynoxide": DynoxideServer, "moto": MotoServer} == stack.LOCAL_DYNAMODB_SERVERS
    assert set(choices) == set(stack.LOCAL_DYNAMODB_SERVERS)


@pytest.mark.parametrize(("choice", "server_type"), [("dynoxide", FakeDynoxide), ("moto", FakeMoto)])
@pytest.mark.usefixtures("fake_servers")
def test_the_stack_starts_the_server_the_setting_names(choice: str, server_type: type[Any]) -> None:
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1", local_dynamodb=choice)

    started = stack.start_local_stack(settings, Path("/work-dir"))

    server = started.dynamodb
    assert isinstance(server, server_type)
    assert server.events == ["start"]
    assert server.work_dir == Path("/work-dir/dynamodb")
    assert started.endpoints.dynamodb_endpoint_url == "http://fake/dynamodb"
    started.stop()
    assert server.events == ["start", "stop"]


@pytest.mark.usefixtures("fake_servers")
def test_a_named_endpoint_starts_no_server_whatever_the_setting() -> None:
    settings = Settings(
        kafka_bootstrap_servers="127.0.0.1:1", dynamodb_endpoint_url="http://named:1", local_dynamodb="moto"
    )

    started = stack.start_local_stack(settings, Path("/work-dir"))

    assert started.dynamodb is None
    assert started.endpoints.dynamodb_endpoint_url == "http://named:1"


def test_the_servers_say_where_they_listen_and_have_no_pid_before_start() -> None:
    for server_type in (DynoxideServer, MotoServer):
        server = server_type(Path("/work-dir"), port=4321)
        assert server.endpoint_url == "http://127.0.0.1:4321"
        assert server.log_path == Path("/work-dir/dynamodb.log")
        assert server.pid is None


@pytest.mark.parametrize(
    ("system", "machine"), [("Darwin", "arm64"), ("Linux", "aarch64"), ("Windows", "AMD64")]
)
def test_another_platform_is_told_to_use_moto(
    monkeypatch: pytest.MonkeyPatch, system: str, machine: str
) -> None:
    monkeypatch.setattr(platform, "system", lambda: system)
    monkeypatch.setattr(platform, "machine", lambda: machine)

    with pytest.raises(StackError) as refused:
        ensure_dynoxide_binary(BINARY)

    assert f"Linux x86_64 only, not {system} {machine}" in str(refused.value)
    assert "EXECUTION_STREAM_LOCAL_DYNAMODB=moto" in str(refused.value)


@pytest.fixture
def on_linux_x64(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")


@pytest.mark.usefixtures("on_linux_x64")
def test_without_the_binary_and_without_npm_the_message_says_to_use_moto(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    monkeypatch.setattr(shutil, "which", lambda name: None)

    with pytest.raises(StackError) as refused:
        ensure_dynoxide_binary(BINARY)

    assert str(refused.value).startswith("npm is needed once to install dynoxide (@dynoxide/linux-x64)")
    assert "EXECUTION_STREAM_LOCAL_DYNAMODB=moto" in str(refused.value)


@pytest.mark.usefixtures("on_linux_x64")
def test_a_missing_binary_is_installed_with_npm_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []
    monkeypatch.setattr(os, "access", lambda path, mode: bool(ran))
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/npm")

    def run(command: list[str], **options: object) -> subprocess.CompletedProcess[str]:
        ran.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", run)

    assert ensure_dynoxide_binary(BINARY) == BINARY
    assert ran == [["/usr/bin/npm", "ci", "--prefix", str(PACKAGE_DIR), "--no-audit", "--no-fund"]]


@pytest.mark.usefixtures("on_linux_x64")
def test_a_failed_npm_ci_is_reported_with_its_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda command, **options: subprocess.CompletedProcess(command, 1, "", "npm error code E404"),
    )

    with pytest.raises(StackError) as refused:
        ensure_dynoxide_binary(BINARY)

    assert "did not install dynoxide" in str(refused.value)
    assert "npm error code E404" in str(refused.value)
    assert "EXECUTION_STREAM_LOCAL_DYNAMODB=moto" in str(refused.value)
