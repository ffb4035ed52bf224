"""Creates the service's topics on the broker; topics that exist already are left as they are."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from execution_stream.settings import Settings
from execution_stream.topology import TABLES, changelog_topic


class KafkaUnreachableError(RuntimeError):
    def __init__(self, bootstrap_servers: str, cause: object) -> None:
        super().__init__(f"cannot reach the Kafka broker at {bootstrap_servers}: {cause}")


@dataclass(frozen=True)
class TopicsCreated:
    created: list[str]
    existing: list[str]


def desired_topics(settings: Settings) -> list[NewTopic]:
    changelogs = [changelog_topic(settings.consumer_group, table) for table in TABLES]
    compacted = settings.compacted_topics() | set(changelogs)
    return [
        NewTopic(
            name=name,
            num_partitions=settings.kafka_partitions,
            replication_factor=settings.kafka_replication_factor,
            topic_configs={"cleanup.policy": "compact"} if name in compacted else {},
        )
        for name in [*settings.topic_names(), *changelogs]
    ]


async def create_topics(settings: Settings) -> TopicsCreated:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        request_timeout_ms=int(settings.kafka_connect_timeout_seconds * 1000),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout=settings.kafka_connect_timeout_seconds)
        existing = set(await admin.list_topics())
        missing = [topic for topic in desired_topics(settings) if topic.name not in existing]
        if missing:
            await admin.create_topics(missing)
    except (KafkaError, OSError, TimeoutError) as error:
        raise KafkaUnreachableError(settings.kafka_bootstrap_servers, error or "timed out") from error
    finally:
        await admin.close()
    names = [topic.name for topic in desired_topics(settings)]
    return TopicsCreated(
        created=[topic.name for topic in missing],
        existing=[name for name in names if name in existing],
    )
