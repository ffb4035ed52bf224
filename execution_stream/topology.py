"""Names the Faust app gives its tables' changelog topics, known without importing Faust.

`init` creates these topics too: two workers starting at once on a fresh group otherwise race the
topics' creation against the first partition assignment, and one of them waits forever.
"""

from __future__ import annotations

# One small value per key (key schemes in domain/allocation.py and pipeline/parked_triggers.py). A table
# per concern, not per kind of key: a group of keys committed together must share a changelog.
TABLE_ALLOCATIONS = "allocation-state"
TABLE_PARKED_TRIGGERS = "parked-trigger-refs"
TABLES = (TABLE_ALLOCATIONS, TABLE_PARKED_TRIGGERS)


def changelog_topic(consumer_group: str, table: str) -> str:
    return f"{consumer_group}-{table}-changelog"
