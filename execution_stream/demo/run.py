"""`execution-stream demo`: on a running stack, triggers become executions, live.

It publishes the demo's assets and triggers, plays their runner, prints each execution's status
changes as `execution-events` tells them, and once every one has ended checks that the HTTP API lists
each with that status. It starts nothing but its own clients: Ctrl-C leaves the stack running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from execution_stream.adapters.kafka_topic_reader import KafkaTopicReader
from execution_stream.demo import api_check
from execution_stream.demo.progress import Progress
from execution_stream.demo.runner import StandInRunner
from execution_stream.demo.seed import ASSETS, DemoJob, demo_jobs
from execution_stream.dev_stack.dev_env_file import read_dev_environment
from execution_stream.dev_stack.dev_tokens import tenant_token
from execution_stream.dev_stack.local_github import standin_answers
from execution_stream.operations import publishing
from execution_stream.settings import ENV_PREFIX, InvalidSettingsError, Settings


class DemoError(RuntimeError):
    pass


@dataclass(frozen=True)
class DemoOptions:
    env_file: Path | None = None
    timeout_seconds: float = 120.0
    work_seconds: float = 3.0

    def __post_init__(self) -> None:
        if self.timeout_seconds <= 0:
            raise ValueError(f"--timeout must be greater than 0, not {self.timeout_seconds:g}")
        if self.work_seconds < 0:
            raise ValueError(f"--work-seconds must not be negative, not {self.work_seconds:g}")


def run_demo(settings: Settings, options: DemoOptions, out: TextIO = sys.stdout) -> int:
    # aiokafka logs each failed connection attempt; the one error that matters reaches the CLI's main.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    return asyncio.run(demo(demo_settings(settings, options.env_file), options, out))


def demo_settings(settings: Settings, env_file: Path | None) -> Settings:
    """`settings` (the environment's) where it names a broker and no file is named; else the
    running `dev`'s environment file overlaid by the environment."""
    if env_file is None and "kafka_bootstrap_servers" in settings.model_fields_set:
        return settings
    path = (env_file or settings.dev_env_file).expanduser()
    return overlaid(settings, read_dev_environment(path), path)


def overlaid(settings: Settings, variables: Mapping[str, str], path: Path) -> Settings:
    """Settings from `variables` (EXECUTION_STREAM_* environment variables) where `settings` (from the
    real environment) does not set them."""
    fields = {
        name.removeprefix(ENV_PREFIX).lower(): value
        for name, value in variables.items()
        if name.startswith(ENV_PREFIX)
    }
    chosen: dict[str, object] = {f: v for f, v in fields.items() if f in Settings.model_fields}
    chosen |= {f: getattr(settings, f) for f in settings.model_fields_set}
    try:
        # Validated as given: the real environment is in `settings` already, read once.
        return Settings.model_validate(chosen)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise InvalidSettingsError(f"invalid settings in {path}: {problems}") from None


async def demo(settings: Settings, options: DemoOptions, out: TextIO) -> int:
    is_standin = await asyncio.to_thread(standin_answers, settings.github_api_url)
    github = settings.github_api_url if is_standin else None
    if github is None:
        _say(f"demo: {settings.github_api_url} is not the local GitHub stand-in: every job is topic-fed")
    jobs = demo_jobs(with_github=github is not None)
    tokens = {tenant: tenant_token(settings, tenant) for tenant in _tenants(jobs)}
    progress = Progress(jobs)
    async with (
        _reader_at_end(settings, settings.topic_execution_events) as events,
        _reader_at_end(settings, settings.topic_runner_jobs) as runner_jobs,
        publishing.idempotent_producer(settings) as producer,
    ):
        await _publish(settings, jobs, out)
        _print_curl_commands(settings, tokens, out)
        plan = {job.jit_event_id: job for job in jobs}
        runner = StandInRunner(
            plan, producer, settings.topic_execution_status, runner_jobs, github, options.work_seconds
        )
        async with _running(runner) as runner_task:
            await _watch(events, progress, out, options.timeout_seconds, runner_task)
    checked = await _checked(settings, tokens, progress)
    print(f"demo: {len(jobs)} executions ended ({progress.counts()}); {checked}", file=out, flush=True)
    return 0


def _print_curl_commands(settings: Settings, tokens: Mapping[str, str | None], out: TextIO) -> None:
    print("demo: the API lists them (a token per tenant):", file=out)
    for tenant, token in tokens.items():
        print(f"  {api_check.curl_command(settings, token)}  # {tenant}", file=out, flush=True)


async def _publish(settings: Settings, jobs: Sequence[DemoJob], out: TextIO) -> None:
    assets = publishing.check_documents([dict(asset) for asset in ASSETS], publishing.Kind.ASSET)
    triggers = publishing.check_documents([job.trigger for job in jobs], publishing.Kind.TRIGGER)
    await publishing.publish(settings, settings.topic_assets, assets)
    await publishing.publish(settings, settings.topic_trigger_execution, triggers)
    runners = ", ".join(sorted({job.job_runner for job in jobs}))
    print(f"demo: published {len(assets)} assets and {len(triggers)} triggers ({runners})", file=out)


async def _watch(
    events: KafkaTopicReader, progress: Progress, out: TextIO, seconds: float, runner: asyncio.Task[None]
) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not progress.ended():
        if runner.done():
            runner.result()  # its error, which stops the demo
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise DemoError(
                f"{len(progress.unfinished())} of {len(progress.jobs)} executions did not end within "
                f"{seconds:g}s: {progress.describe_unfinished()}"
            )
        for records in (await events.poll(timeout_ms=int(min(remaining, 0.5) * 1000))).values():
            for record in records:
                if (line := progress.observe(record.value)) is not None:
                    print(line, file=out, flush=True)


async def _checked(settings: Settings, tokens: Mapping[str, str | None], progress: Progress) -> str:
    """What the API says of the executions: listed as they ended, or DemoError."""
    minted = {tenant: token for tenant, token in tokens.items() if token is not None}
    if len(minted) < len(tokens):
        return "not checked through the API: no JWT secret known (EXECUTION_STREAM_JWT_SECRET)"
    finals = progress.final_statuses()
    problems = []
    for tenant, token in minted.items():
        expected = {e: status for e, (t, status) in finals.items() if t == tenant}
        problems += await api_check.api_mismatches(settings, token, expected)
    if problems:
        raise DemoError(f"the API at {settings.api_url()} disagrees: {'; '.join(problems)}")
    return f"the API lists all {len(finals)}"


@contextlib.asynccontextmanager
async def _reader_at_end(settings: Settings, topic: str) -> AsyncIterator[KafkaTopicReader]:
    """A reader of `topic` from its end offsets of now: what is written later, nothing missed."""
    reader = KafkaTopicReader(settings.kafka_bootstrap_servers, [topic])
    try:
        with publishing.kafka_errors(settings, f"reading {topic!r}"):
            await publishing.bounded(settings, reader.start())
            await publishing.bounded(settings, reader.seek_to_end())
        if not reader.partitions:
            raise DemoError(f"topic {topic!r} does not exist at {settings.kafka_bootstrap_servers}")
        yield reader
    finally:
        await reader.stop()


@contextlib.asynccontextmanager
async def _running(runner: StandInRunner) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(runner.run())
    try:
        yield task
    finally:
        task.cancel()
        # A runner's error was raised by `_watch` already, or would hide the error that ended it.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _tenants(jobs: Sequence[DemoJob]) -> list[str]:
    return list(dict.fromkeys(job.tenant_id for job in jobs))


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
