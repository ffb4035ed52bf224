"""Settings come from the environment, and go back to it for the processes we start."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from execution_stream.settings import InvalidSettingsError, Settings, load_settings


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


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('{"acme": 0}', "tenant 'acme' limit 0 must be at least 1"),
        ('{"ok": 2, "acme": -1}', "tenant 'acme' limit -1 must be at least 1"),
        ('{"acme": 2.5}', "tenant 'acme' limit 2.5 must be an integer"),
        ('{"acme": "2"}', "tenant 'acme' limit \"2\" must be an integer"),
        ('{"acme": true}', "tenant 'acme' limit true must be an integer"),
        ('{"acme": ', "not JSON"),
        ("[2]", "expected a JSON object of limits by tenant"),
    ],
)
def test_a_tenant_limit_below_one_or_not_an_integer_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("EXECUTION_STREAM_TENANT_CONCURRENCY_LIMITS", value)
    with pytest.raises(InvalidSettingsError) as refused:
        load_settings()

    prefix = "invalid setting EXECUTION_STREAM_TENANT_CONCURRENCY_LIMITS: "
    assert str(refused.value).startswith(prefix + problem)
    assert "\n" not in str(refused.value)


def test_a_tenant_limit_below_one_is_refused_when_built_in_code() -> None:
    with pytest.raises(ValueError, match="tenant 'acme' limit 0 must be at least 1"):
        Settings(tenant_concurrency_limits={"acme": 0})


def test_tenant_limits_of_one_and_more_are_read_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTION_STREAM_TENANT_CONCURRENCY_LIMITS", '{"acme": 1, "big": 500}')

    assert load_settings().tenant_concurrency_limits == {"acme": 1, "big": 500}


def test_every_bad_value_is_named_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTION_STREAM_KAFKA_PARTITIONS", "0")
    monkeypatch.setenv("EXECUTION_STREAM_BATCH_SIZE", "many")
    with pytest.raises(InvalidSettingsError) as refused:
        load_settings()

    assert str(refused.value) == (
        "invalid setting EXECUTION_STREAM_KAFKA_PARTITIONS: Input should be greater than or equal to 1; "
        "invalid setting EXECUTION_STREAM_BATCH_SIZE: "
        "Input should be a valid integer, unable to parse string as an integer"
    )


def test_cors_origins_are_read_as_a_list_and_lowercased(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "EXECUTION_STREAM_API_CORS_ORIGINS", '["https://App.example.com", "http://localhost:5173"]'
    )
    assert load_settings().api_cors_origins == ["https://app.example.com", "http://localhost:5173"]
    monkeypatch.setenv("EXECUTION_STREAM_API_CORS_ORIGINS", "https://a.example.com, *")
    assert load_settings().api_cors_origins == ["https://a.example.com", "*"]
    monkeypatch.setenv("EXECUTION_STREAM_API_CORS_ORIGINS", "http://[::1]:8080")
    assert load_settings().api_cors_origins == ["http://[::1]:8080"]


def test_cors_origins_are_written_as_a_browser_sends_them(monkeypatch: pytest.MonkeyPatch) -> None:
    given = (
        "https://app.example.com/, https://web.example.com:443, http://localhost:80, http://localhost:8080/"
    )
    monkeypatch.setenv("EXECUTION_STREAM_API_CORS_ORIGINS", given)
    assert load_settings().api_cors_origins == [
        "https://app.example.com",
        "https://web.example.com",
        "http://localhost",
        "http://localhost:8080",
    ]


@pytest.mark.parametrize(
    "value", ["https://app.example.com/web", "app.example.com", "null", "ftp://x", "https://a.example.com:x"]
)
def test_a_cors_origin_that_a_browser_never_sends_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("EXECUTION_STREAM_API_CORS_ORIGINS", value)
    with pytest.raises(InvalidSettingsError, match=r"EXECUTION_STREAM_API_CORS_ORIGINS.*is not an origin"):
        load_settings()
