"""docker-compose.yml cannot be run here (no Docker engine): it is checked against the settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from execution_stream.dev_stack.kafka_broker import server_properties
from execution_stream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "EXECUTION_STREAM_"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_every_variable_the_compose_file_sets_is_a_setting() -> None:
    services = compose()["services"]
    names = {name for service in services.values() for name in service.get("environment", {})}
    ours = {name.removeprefix(PREFIX).lower() for name in names if name.startswith(PREFIX)}
    assert ours
    assert ours <= set(Settings.model_fields), ours - set(Settings.model_fields)


def test_the_compose_broker_is_kafka_4_in_kraft_like_the_local_broker() -> None:
    kafka = compose()["services"]["kafka"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"])
    environment = kafka["environment"]
    local = dict(line.split("=", 1) for line in server_properties(9092, 9093, Path("/data")).splitlines())
    shared = ("process.roles", "offsets.topic.replication.factor", "group.initial.rebalance.delay.ms")
    for name in (*shared, "auto.create.topics.enable"):
        assert str(environment[f"KAFKA_{name.upper().replace('.', '_')}"]) == local[name]


def test_the_worker_api_and_init_run_the_cli() -> None:
    services = compose()["services"]
    assert [services[name]["command"] for name in ("init", "worker", "api")] == [
        ["init"],
        ["worker"],
        ["api"],
    ]
    assert 'ENTRYPOINT ["execution-stream"]' in (ROOT / "Dockerfile").read_text()
