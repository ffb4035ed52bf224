"""Settings come from the environment, and go back to it for the processes we start."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from execution_stream.settings import Settings


def test_settings_round_trip_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings(
        jwt_secret=SecretStr("s3cret"),
        tenant_concurrency_limits={"tenant-a": 2},
        dynamodb_endpoint_url="http://127.0.0.1:1",
        kafka_partitions=3,
    )
    for name, value in original.to_environment().items():
        monkeypatch.setenv(name, value)

    assert Settings() == original


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTION_STREAM_KAFKA_PARTITIONS", "zero")
    with pytest.raises(ValueError, match="kafka_partitions"):
        Settings()


def test_settings_are_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        Settings().kafka_partitions = 3  # type: ignore[misc]
