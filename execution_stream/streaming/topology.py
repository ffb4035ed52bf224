"""Names the Faust app gives its tables' changelog topics, known without importing Faust.

`init` creates these topics too: two workers starting at once on a fresh group otherwise race the
topics' creation against the first partition assignment, and one of them waits forever.
"""

from __future__ import annotations

TABLE_ALLOCATIONS = "allocations"
TABLE_PARKED_TRIGGERS = "parked-triggers"
TABLES = (TABLE_ALLOCATIONS, TABLE_PARKED_TRIGGERS)


def changelog_topic(consumer_group: str, table: str) -> str:
    return f"{consumer_group}-{table}-changelog"
