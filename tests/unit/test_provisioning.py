"""What `init` prints about the table: created, already present, or present with indexes added."""

from __future__ import annotations

import pytest

from execution_stream import provisioning
from execution_stream.adapters.dynamodb_table import TableCreated
from execution_stream.adapters.kafka_topics import TopicsCreated
from execution_stream.settings import Settings


@pytest.mark.parametrize(
    ("table", "line"),
    [
        (TableCreated("Executions", created=True), "table Executions: created"),
        (TableCreated("Executions", created=False), "table Executions: already present"),
        (
            TableCreated("Executions", created=False, indexes_added=("GSI5",)),
            "table Executions: already present; indexes added: GSI5",
        ),
    ],
)
async def test_the_table_line(monkeypatch: pytest.MonkeyPatch, table: TableCreated, line: str) -> None:
    async def no_topics(settings: Settings) -> TopicsCreated:
        return TopicsCreated(created=[], existing=[])

    monkeypatch.setattr(provisioning, "create_topics", no_topics)
    monkeypatch.setattr(provisioning, "create_table", lambda settings: table)
    assert (await provisioning.provision(Settings()))[2] == line
