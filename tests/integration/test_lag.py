"""`lag` against the real broker: 100 records in 3 partitions, 60 consumed and committed, 40 behind."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from execution_stream.dev_stack.processes import free_loopback_port
from execution_stream.operations.lag import lag_report
from execution_stream.settings import Settings

PARTITIONS = 3
PRODUCED = 100
CONSUMED = 60
CLI_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class LagTopic:
    name: str
    produced: dict[int, int]  # partition -> records (= its log-end offset)


@dataclass(frozen=True)
class CommittedGroup:
    group: str
    client_id: str
    committed: dict[int, int]  # partition -> committed offset (= records consumed from it)

    def expected_lag(self, topic: LagTopic) -> dict[int, int]:
        return {p: topic.produced[p] - self.committed[p] for p in range(PARTITIONS)}


@pytest.fixture(scope="module")
async def lag_topic(stack_settings: Settings) -> LagTopic:
    name = f"lag-{os.urandom(5).hex()}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack_settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()
    # lz4: `lag` reads the oldest record behind each committed offset, whatever its codec.
    producer = AIOKafkaProducer(
        bootstrap_servers=stack_settings.kafka_bootstrap_servers, compression_type="lz4"
    )
    await producer.start()
    try:
        sent = [
            await producer.send(name, key=f"tenant-{n % 7}".encode(), value=str(n).encode())
            for n in range(PRODUCED)
        ]
        metadata = await asyncio.gather(*sent)
    finally:
        await producer.stop()
    produced = Counter(record.partition for record in metadata)
    return LagTopic(name, {p: produced[p] for p in range(PARTITIONS)})


async def consume_and_commit(
    settings: Settings, topic: str, group: str
) -> tuple[AIOKafkaConsumer, dict[int, int]]:
    """A member of `group` that consumes exactly CONSUMED records and commits them (0 where none)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        client_id=f"client-{group}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    consumed: Counter[int] = Counter()
    while consumed.total() < CONSUMED:
        batches = await consumer.getmany(timeout_ms=5000, max_records=CONSUMED - consumed.total())
        assert batches, "the broker delivered nothing within 5s"
        for tp, records in batches.items():
            assert [r.offset for r in records] == list(range(consumed[tp.partition], records[-1].offset + 1))
            consumed[tp.partition] += len(records)
    committed = {p: consumed[p] for p in range(PARTITIONS)}
    await consumer.commit({TopicPartition(topic, p): offset for p, offset in committed.items()})
    return consumer, committed


@pytest.fixture
async def live_group(
    stack_settings: Settings, lag_topic: LagTopic, unique: str
) -> AsyncIterator[CommittedGroup]:
    """A group whose one member is still in it, holding all three partitions."""
    group = f"lag-live-{unique}"
    consumer, committed = await consume_and_commit(stack_settings, lag_topic.name, group)
    try:
        yield CommittedGroup(group, f"client-{group}", committed)
    finally:
        await consumer.stop()


@pytest.fixture
async def left_group(stack_settings: Settings, lag_topic: LagTopic, unique: str) -> CommittedGroup:
    """A group whose member committed and left: offsets stay, nobody owns the partitions."""
    group = f"lag-left-{unique}"
    consumer, committed = await consume_and_commit(stack_settings, lag_topic.name, group)
    await consumer.stop()
    return CommittedGroup(group, f"client-{group}", committed)


def topic_entry(document: dict[str, Any], group: str, topic: str) -> dict[str, Any]:
    [entry] = [g for g in document["groups"] if g["group"] == group]
    [found] = [t for t in entry["topics"] if t["topic"] == topic]
    return dict(found)


def assert_forty_behind(document: dict[str, Any], group: CommittedGroup, topic: LagTopic) -> None:
    entry = topic_entry(document, group.group, topic.name)
    partitions = {p["partition"]: p for p in entry["partitions"]}
    expected = group.expected_lag(topic)
    assert entry["lag"] == PRODUCED - CONSUMED == sum(expected.values())
    assert {p: row["lag"] for p, row in partitions.items()} == expected
    assert {p: row["committed_offset"] for p, row in partitions.items()} == group.committed
    assert {p: row["log_end_offset"] for p, row in partitions.items()} == topic.produced
    for number, row in partitions.items():
        if expected[number]:
            assert 0 <= row["time_lag_seconds"] < 300, row
            assert row["status"] == "UNKNOWN"  # one observation: behind, trend unknown
        else:
            assert row["time_lag_seconds"] is None
            assert row["status"] == "OK"


async def test_lag_reports_the_forty_records_behind_and_who_owns_them(
    stack_settings: Settings, lag_topic: LagTopic, live_group: CommittedGroup
) -> None:
    report = await lag_report(stack_settings, [live_group.group])
    document = report.to_document()

    assert_forty_behind(document, live_group, lag_topic)
    [group] = document["groups"]
    assert (group["state"], group["members"], group["lag"]) == ("Stable", 1, 40)
    rows = topic_entry(document, live_group.group, lag_topic.name)["partitions"]
    assert {row["client_id"] for row in rows} == {live_group.client_id}
    assert all(row["consumer_id"].startswith(live_group.client_id) and row["host"] for row in rows)


async def run_cli(settings: Settings, *arguments: str) -> tuple[int, str, str]:
    environment = {**os.environ, **settings.to_environment()}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "execution_stream",
        "lag",
        *arguments,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(CLI_TIMEOUT_SECONDS):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_lag_json_from_the_command_line(
    stack_settings: Settings, lag_topic: LagTopic, live_group: CommittedGroup
) -> None:
    code, stdout, stderr = await run_cli(stack_settings, "--json", "--group", live_group.group)

    assert (code, stderr) == (0, "")
    [line] = stdout.splitlines()
    assert_forty_behind(json.loads(line), live_group, lag_topic)


async def test_watch_judges_a_group_that_nobody_consumes_as_stopped(
    stack_settings: Settings, lag_topic: LagTopic, left_group: CommittedGroup
) -> None:
    code, stdout, stderr = await run_cli(
        stack_settings, "--json", "--group", left_group.group, "--watch", "0.2", "--count", "3"
    )

    assert (code, stderr) == (0, "")
    documents = [json.loads(line) for line in stdout.splitlines()]
    assert [d["groups"][0]["observations"] for d in documents] == [1, 2, 3]
    last = documents[-1]["groups"][0]
    assert (last["state"], last["members"]) == ("Empty", 0)
    rows = topic_entry(documents[-1], left_group.group, lag_topic.name)["partitions"]
    expected = left_group.expected_lag(lag_topic)
    assert {row["partition"]: row["status"] for row in rows} == {
        p: "STOP" if expected[p] else "OK" for p in range(PARTITIONS)
    }
    assert all(row["consumer_id"] is None for row in rows)
    assert last["status"] == "STOP"


async def test_a_group_that_does_not_exist_is_one_line_and_exit_1(
    stack_settings: Settings, unique: str
) -> None:
    missing = f"no-such-group-{unique}"
    code, stdout, stderr = await run_cli(stack_settings, "--group", missing)

    assert (code, stdout) == (1, "")
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("execution-stream lag: consumer group ")
    assert missing in stderr


async def test_a_dead_broker_is_one_line_naming_it_within_30s(stack_settings: Settings) -> None:
    dead = f"127.0.0.1:{free_loopback_port()}"
    settings = stack_settings.model_copy(update={"kafka_bootstrap_servers": dead})
    started = time.monotonic()
    code, stdout, stderr = await run_cli(settings, "--json")

    assert time.monotonic() - started < 30
    assert (code, stdout) == (1, "")
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith(f"execution-stream lag: cannot reach the Kafka broker at {dead}")
