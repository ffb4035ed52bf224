"""`execution-stream dev`: the whole service on a local stack, until Ctrl-C or SIGTERM.

Once everything it started is ready it prints one line on standard output, a contract for scripts:
`ready {"kafka": "127.0.0.1:PORT", "dynamodb": "http://127.0.0.1:PORT", "api": "http://127.0.0.1:PORT",
"github": URL}`, printed once the API answers and the worker's consumer group is stable. People get the
conventional ports where they are free (Kafka 9092, DynamoDB 8000, the API 8080, the worker's web 6066),
any free one otherwise. Just before the ready line it writes the stack's environment to
`Settings.dev_env_file` (`dev --env` prints it), and removes it when it stops.
Everything else (progress, the services' logs) goes to standard error.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from execution_stream.api.ui_page import UI_PATH
from execution_stream.dev_stack import processes
from execution_stream.dev_stack.dev_env_file import remove_dev_environment, write_dev_environment
from execution_stream.dev_stack.dev_tokens import DEV_TENANT, tenant_token
from execution_stream.dev_stack.stack import DevStack, dev_stack
from execution_stream.provisioning import provision
from execution_stream.settings import Settings

# The local endpoints (dynoxide, moto's server) accept any credentials; real ones are never needed.
LOCAL_AWS_DEFAULTS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}
SERVICE_START_SECONDS = 60.0


def run_dev(settings: Settings, work_dir: str | None) -> int:
    stop_requested = threading.Event()
    _on_signals(stop_requested)
    for name, value in LOCAL_AWS_DEFAULTS.items():
        os.environ.setdefault(name, value)
    with dev_stack(settings, Path(work_dir) if work_dir else None, for_people=True) as stack:
        local = _local_settings(settings, stack)
        for line in asyncio.run(provision(local)):
            _say(line)
        services = _start_services(local)
        try:
            _write_environment(local, tenant_token(local, DEV_TENANT))
            print(f"ready {json.dumps(_endpoints(local, stack))}", flush=True)
            failed = _supervise(services, stop_requested)
        finally:
            _say("stopping")
            remove_dev_environment(local.dev_env_file)
            for process in services.values():
                processes.stop(process, grace_seconds=20)
    return 1 if failed else 0


def _endpoints(local: Settings, stack: DevStack) -> dict[str, str]:
    return {
        "kafka": stack.endpoints.kafka_bootstrap_servers,
        "dynamodb": stack.endpoints.dynamodb_endpoint_url,
        "api": local.api_url(),
        "github": local.github_api_url,
    }


def _local_settings(settings: Settings, stack: DevStack) -> Settings:
    overrides: dict[str, object] = {
        "kafka_bootstrap_servers": stack.endpoints.kafka_bootstrap_servers,
        "dynamodb_endpoint_url": stack.endpoints.dynamodb_endpoint_url,
    }
    for port_setting in ("api_port", "worker_web_port"):
        if port_setting not in settings.model_fields_set:
            overrides[port_setting] = processes.preferred_or_free(getattr(settings, port_setting))
    if "api_ui" not in settings.model_fields_set:
        overrides["api_ui"] = True
    if stack.github is not None:
        overrides["github_api_url"] = stack.github.api_url
        overrides["github_app_id"] = stack.github.app_id
        overrides["github_app_private_key"] = SecretStr(stack.github.app_key.private_pem)
        _say(f"no GitHub App configured: github_actions jobs go to a local GitHub at {stack.github.api_url}")
    if settings.jwt_secret is None and settings.jwt_public_key is None:
        overrides["jwt_secret"] = SecretStr(secrets.token_urlsafe(32))
        _say("no JWT key configured: generated one")
    return settings.model_copy(update=overrides)


def _write_environment(local: Settings, token: str | None) -> None:
    variables = {**local.to_environment(only_set=True), **_local_aws_environment(), "API": local.api_url()}
    if token is not None:
        variables["TOKEN"] = token
        _say(f"a token for tenant {DEV_TENANT!r}: {token}")
    if local.api_ui:
        variables["UI"] = ui_url(local, token)
        _say(f"the executions page: {variables['UI']}")
    write_dev_environment(local.dev_env_file, variables)
    _say(f"the stack's environment: {local.dev_env_file}; for another shell: . <(execution-stream dev --env)")


def ui_url(local: Settings, token: str | None) -> str:
    """The page, with the dev tenant's token in the fragment: the page reads it, and the fragment
    never reaches a server or a log."""
    url = f"{local.api_url()}{UI_PATH}"
    return f"{url}#token={token}" if token is not None else url


def _local_aws_environment() -> dict[str, str]:
    return {name: os.environ[name] for name in LOCAL_AWS_DEFAULTS}


def _start_services(settings: Settings) -> dict[str, subprocess.Popen[bytes]]:
    environment = {**os.environ, **settings.to_environment()}
    services: dict[str, subprocess.Popen[bytes]] = {}
    try:
        services["api"] = processes.spawn_attached(
            [sys.executable, "-m", "execution_stream", "api"], environment
        )
        _wait_for_http(f"{settings.api_url()}/healthz", services["api"])
        services["worker"] = processes.spawn_attached(
            [sys.executable, "-m", "execution_stream", "worker"], environment
        )
        asyncio.run(_wait_for_consumer_group(settings, services["worker"]))
    except BaseException:
        for process in services.values():
            processes.stop(process, grace_seconds=10)
        raise
    return services


def _wait_for_http(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVICE_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise processes.StackError(f"{url} exited with code {process.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise processes.StackError(f"{url} did not answer within {SERVICE_START_SECONDS:.0f}s")


async def _wait_for_consumer_group(settings: Settings, worker: subprocess.Popen[bytes]) -> None:
    """The worker is ready once its consumer group is stable with partitions assigned."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        deadline = time.monotonic() + SERVICE_START_SECONDS
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise processes.StackError(f"the worker exited with code {worker.returncode} while starting")
            if await group_is_stable(admin, settings.consumer_group):
                return
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
    raise processes.StackError(
        f"the worker's group did not become stable within {SERVICE_START_SECONDS:.0f}s"
    )


async def group_is_stable(admin: AIOKafkaAdminClient, group_id: str) -> bool:
    try:
        described = await admin.describe_consumer_groups([group_id])
    except KafkaError:  # no coordinator yet: the group is still forming
        return False
    groups = [group for response in described for group in response.groups]
    # DescribeGroups rows: error_code, group, state, protocol_type, protocol, members, ...
    return any(group[2] == "Stable" and group[5] for group in groups)


def _supervise(services: dict[str, subprocess.Popen[bytes]], stop_requested: threading.Event) -> bool:
    """Waits for a stop request; True when a service ended on its own first."""
    while not stop_requested.wait(timeout=0.5):
        for name, process in services.items():
            if process.poll() is not None:
                _say(f"{name} exited with code {process.returncode}; stopping everything")
                return True
    return False


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _on_signals(stop_requested: threading.Event) -> None:
    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
