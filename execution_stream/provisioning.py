"""`init`: the topics and the table, each created only where missing."""

from __future__ import annotations

import asyncio

from execution_stream.adapters.dynamodb_table import TableCreated, create_table
from execution_stream.adapters.kafka_topics import create_topics
from execution_stream.settings import Settings


async def provision(settings: Settings) -> list[str]:
    topics = await create_topics(settings)
    table = await asyncio.to_thread(create_table, settings)
    return [
        f"topics created: {', '.join(topics.created) or 'none'}",
        f"topics already present: {', '.join(topics.existing) or 'none'}",
        f"table {table.name}: {_table_outcome(table)}",
    ]


def _table_outcome(table: TableCreated) -> str:
    if table.created:
        return "created"
    if table.indexes_added:
        return f"already present; indexes added: {', '.join(table.indexes_added)}"
    return "already present"
