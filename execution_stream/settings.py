"""Every setting an operator may change, read from `EXECUTION_STREAM_*` environment variables.

Nothing here reads the environment at import time: call `load_settings()` where the process starts.
The AWS region and credentials are not ours: botocore reads the usual AWS variables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from execution_stream.event_loop import EventLoop

ENV_PREFIX = "EXECUTION_STREAM_"
ANY_ORIGIN = "*"
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}
_ORIGIN = re.compile(r"https?://(\[[0-9a-f:.]+\]|[^/?#@\s:\[\]]+)(:[0-9]{1,5})?")


class InvalidSettingsError(ValueError):
    """The environment gives a setting that cannot be used; the message is one line naming it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_partitions: int = Field(default=6, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)
    kafka_connect_timeout_seconds: float = Field(default=20.0, gt=0)
    consumer_group: str = "execution-stream"

    topic_trigger_execution: str = "trigger-execution"
    topic_assets: str = "assets"
    topic_allocate_runner_resource: str = "allocate-runner-resource"
    topic_enrich_and_dispatch: str = "enrich-and-dispatch"
    topic_runner_jobs: str = "runner-jobs"
    topic_execution_status: str = "execution-status"
    topic_execution_events: str = "execution-events"
    topic_execution_dlq: str = "execution-dlq"
    topic_trigger_waiting: str = "trigger-waiting"
    topic_execution_commands: str = "execution-commands"
    worker_web_host: str = "127.0.0.1"
    worker_web_port: int = Field(default=6066, ge=0, le=65535)
    worker_data_dir: str | None = None
    commit_interval_seconds: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=200, ge=1)
    batch_within_seconds: float = Field(default=0.02, gt=0)

    dynamodb_endpoint_url: str | None = None
    dynamodb_table: str = "Executions"
    dynamodb_max_attempts: int = Field(default=8, ge=1)
    dynamodb_max_pool_connections: int = Field(default=32, ge=1)
    dynamodb_write_concurrency: int = Field(default=16, ge=1)
    # The DynamoDB server `dev` and the tests start where no endpoint is named (dev_stack/stack.py).
    local_dynamodb: Literal["dynoxide", "moto"] = "dynoxide"
    # The ports `dev` gives people when they are free (else any free one), and where it writes the
    # running stack's environment for other shells (`dev --env`, `demo`).
    dev_kafka_port: int = Field(default=9092, ge=1, le=65535)
    dev_dynamodb_port: int = Field(default=8000, ge=1, le=65535)
    dev_env_file: Path = Field(default_factory=lambda: Path.home() / ".execution-stream" / "dev.env")

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    jwt_secret: SecretStr | None = None
    jwt_public_key: SecretStr | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_tenant_claim: str = "tenant_id"
    cursor_secret: SecretStr | None = None
    # Browser origins (scheme://host[:port], or "*") whose pages may call the API; empty: no CORS.
    api_cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The executions page at /ui/ (`dev` turns it on).
    api_ui: bool = False

    default_concurrency_limit: int = Field(default=10, ge=1)
    tenant_concurrency_limits: Annotated[dict[str, int], NoDecode] = Field(default_factory=dict)
    job_timeout_seconds: int = Field(default=3600, ge=1)
    released_memory_seconds: float = Field(default=3600.0, gt=0)
    released_memory_count: int = Field(default=10_000, ge=1)
    queue_view_interval_seconds: float = Field(default=1.0, gt=0)
    watchdog_interval_seconds: float = Field(default=5.0, gt=0)
    lag_metrics_interval_seconds: float = Field(default=15.0, gt=0)
    stalled_partition_check_seconds: float = Field(default=5.0, gt=0)
    asset_wait_seconds: float = Field(default=300.0, ge=0)
    asset_wait_check_seconds: float = Field(default=1.0, gt=0)

    github_api_url: str = "https://api.github.com"
    github_app_id: str | None = None
    github_app_private_key: SecretStr | None = None
    github_max_attempts: int = Field(default=3, ge=1)
    github_request_timeout_seconds: float = Field(default=10.0, gt=0)
    # A job whose runner is unavailable is set aside, and tried again after GitHub's Retry-After or
    # rate-limit reset, else after a backoff from the first to the max, doubling.
    dispatch_retry_first_seconds: float = Field(default=5.0, gt=0)
    dispatch_retry_max_seconds: float = Field(default=300.0, gt=0)
    dispatch_retry_check_seconds: float = Field(default=1.0, gt=0)

    # A dispatched or running execution asked to cancel is canceled when its runner confirms, or
    # when this grace period has passed without an answer.
    cancel_grace_seconds: float = Field(default=60.0, gt=0)
    # A new trigger of these jit_event_names cancels the older one of the same tenant, asset, plan
    # item, job (and pull request) still pending (GitHub's concurrency groups); the second list also
    # a running one.
    supersede_events: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["pull_request_updated"])
    supersede_in_progress_events: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # A runner's failure reported `retryable` is dispatched again, up to this many attempts in all,
    # after a backoff from the first to the max, doubling.
    max_attempts: int = Field(default=3, ge=1)
    retry_first_seconds: float = Field(default=10.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)
    # Priority classes 0-9, higher first: a trigger's own `priority`, else its jit_event_name's here,
    # else the default. A waiting execution gains one class per `priority_aging_seconds`.
    default_priority: int = Field(default=0, ge=0, le=9)
    event_priorities: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=lambda: {"pull_request_created": 5, "pull_request_updated": 5}
    )
    priority_aging_seconds: float = Field(default=600.0, gt=0)

    log_level: str = "INFO"
    event_loop: EventLoop = "uvloop"

    @field_validator("tenant_concurrency_limits", mode="before")
    @classmethod
    def _tenant_limits_at_least_one(cls, value: object) -> object:
        return _tenant_limits(value)

    @field_validator("supersede_events", "supersede_in_progress_events", mode="before")
    @classmethod
    def _event_names(cls, value: object) -> object:
        return _names(value)

    @field_validator("api_cors_origins", mode="before")
    @classmethod
    def _browser_origins(cls, value: object) -> object:
        return _origins(value)

    @field_validator("event_priorities", mode="before")
    @classmethod
    def _priorities_are_classes(cls, value: object) -> object:
        return _priorities(value)

    def to_environment(self, *, only_set: bool = False) -> dict[str, str]:
        """These settings as the environment variables that would give them to another process
        (`only_set`: only those given explicitly, not the defaults)."""
        environment = {}
        chosen = self.model_fields_set if only_set else None
        for name, value in self.model_dump(exclude_none=True, include=chosen).items():
            plain = value.get_secret_value() if isinstance(value, SecretStr) else value
            text = json.dumps(plain) if isinstance(plain, dict | list) else str(plain)
            environment[f"{ENV_PREFIX}{name.upper()}"] = text
        return environment

    def api_url(self) -> str:
        """Where the API listens, as a URL (as `dev` prints it)."""
        return f"http://{self.api_host}:{self.api_port}"

    def topic_names(self) -> list[str]:
        return [
            self.topic_trigger_execution,
            self.topic_assets,
            self.topic_allocate_runner_resource,
            self.topic_enrich_and_dispatch,
            self.topic_runner_jobs,
            self.topic_execution_status,
            self.topic_execution_events,
            self.topic_execution_dlq,
            self.topic_trigger_waiting,
            self.topic_execution_commands,
        ]

    def compacted_topics(self) -> frozenset[str]:
        return frozenset({self.topic_assets})


def load_settings() -> Settings:
    """The settings of the environment, or InvalidSettingsError whose message is one line."""
    try:
        return Settings()
    except ValidationError as error:
        raise InvalidSettingsError("; ".join(map(_describe, error.errors()))) from None


def _tenant_limits(value: object) -> object:
    """A JSON object of integers >= 1: a lower limit would admit none of the tenant's jobs."""
    return _checked_json(value, _limits_problem)


def _checked_json(value: object, problem_of: Callable[[object], str | None]) -> object:
    """`value`, parsed when it is JSON text, if `problem_of` finds no problem in it."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"not JSON ({error})") from None
    problem = problem_of(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _names(value: object) -> object:
    """A JSON list of names, or names separated by commas."""
    if not isinstance(value, str):
        return value
    if value.strip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"not JSON ({error})") from None
    return [name.strip() for name in value.split(",") if name.strip()]


def _origins(value: object) -> object:
    """Origins as a browser sends them: lowercased, without a trailing slash or the scheme's default
    port (they would never match); a path is refused."""
    names = _names(value)
    if not isinstance(names, list):
        return names
    return [_origin(str(name)) for name in names]


def _origin(name: str) -> str:
    origin = name.strip().lower().removesuffix("/")
    if origin == ANY_ORIGIN:
        return origin
    if not _ORIGIN.fullmatch(origin):
        raise ValueError(
            f"{name!r} is not an origin: expected scheme://host[:port], e.g. https://app.example.com"
        )
    scheme = origin.split(":", 1)[0]
    return origin.removesuffix(_DEFAULT_PORTS[scheme])


def _priorities(value: object) -> object:
    """A JSON object of priority classes 0-9 by jit_event_name."""
    return _checked_json(value, _priorities_problem)


def _priorities_problem(value: object) -> str | None:
    if not isinstance(value, Mapping):
        return 'expected a JSON object of priorities by jit_event_name, e.g. {"push": 5}'
    for name, priority in value.items():
        if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9:
            return f"event {name!r} priority {json.dumps(priority, default=repr)} must be 0-9"
    return None


def _limits_problem(value: object) -> str | None:
    if not isinstance(value, Mapping):
        return 'expected a JSON object of limits by tenant, e.g. {"tenant-a": 2}'
    for tenant, limit in value.items():
        if isinstance(limit, bool) or not isinstance(limit, int):
            return f"tenant {tenant!r} limit {json.dumps(limit, default=repr)} must be an integer"
        if limit < 1:
            return f"tenant {tenant!r} limit {limit} must be at least 1"
    return None


def _describe(detail: ErrorDetails) -> str:
    field, *inside = detail["loc"] or ("",)
    where = "".join(f"[{part!r}]" for part in inside)
    cause = detail.get("ctx", {}).get("error")
    message = str(cause) if detail["type"] == "value_error" and cause else detail["msg"]
    return f"invalid setting {ENV_PREFIX}{str(field).upper()}{where}: {message}"
