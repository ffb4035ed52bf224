"""Several keys of one table changed as one: a commit that a crash cannot leave half applied.

A faust table's writes reach its changelog in the order they are made, per partition, and a crash
keeps a prefix of them. Every key of a group belongs to one *head* key (a runner line, a parked
group) on the same partition. A commit writes, in this order: each changed key as a record
`{"v": version, "val": new value, "prev": value before}`, then the head with that version, then
physical deletions of the keys it removed. Reading a record against its head's version gives `val`
when the head has that version (the commit is whole) and `prev` when it has not (a crash came
before the head was written): a reader never sees part of a commit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

VERSION = "version"


@dataclass(frozen=True)
class Write:
    key: str
    value: Any  # None: delete the key


def resolve(record: Mapping[str, Any] | None, head_version: int) -> Any:
    """The value a record holds for a head at `head_version`."""
    if record is None:
        return None
    return record["val"] if record["v"] <= head_version else record["prev"]


@dataclass
class Commit:
    """The reads and writes of one operation on one head's keys."""

    table: Mapping[str, Any]
    head_key: str
    head: dict[str, Any]
    _staged: dict[str, Any] = field(default_factory=dict)
    _original: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._original = dict(self.head)

    @classmethod
    def open(cls, table: Mapping[str, Any], head_key: str, empty: Mapping[str, Any]) -> Commit:
        stored = table.get(head_key)
        head = dict(stored) if stored is not None else {**empty, VERSION: 0}
        return cls(table, head_key, head)

    @property
    def version(self) -> int:
        return int(self.head[VERSION])

    def get(self, key: str) -> Any:
        if key in self._staged:
            return self._staged[key]
        return resolve(self.table.get(key), self.version)

    def set(self, key: str, value: Any) -> None:
        self._staged[key] = value

    def delete(self, key: str) -> None:
        self._staged[key] = None

    @property
    def changed(self) -> bool:
        return bool(self._staged) or self.head != self._original

    def writes(self) -> list[Write]:
        """Records, then the head, then deletions: in this order, or nothing if nothing changed."""
        if not self.changed:
            return []
        version = self.version + 1
        records = [
            Write(key, {"v": version, "val": value, "prev": resolve(self.table.get(key), self.version)})
            for key, value in self._staged.items()
        ]
        head = Write(self.head_key, {**self.head, VERSION: version})
        deletions = [Write(key, None) for key, value in self._staged.items() if value is None]
        return [*records, head, *deletions]


def apply(table: Any, writes: list[Write]) -> None:
    """Writes in their order to a table (a faust table sends each to its changelog in this order)."""
    for write in writes:
        if write.value is None:
            if write.key in table:
                del table[write.key]
        else:
            table[write.key] = write.value


class Pending(Mapping[str, Any]):
    """A table as it will be once writes not applied yet are: the decisions a batch makes one after
    another each see the ones before, while the table itself waits until their effects are sent."""

    def __init__(self, table: Mapping[str, Any]) -> None:
        self._table = table
        self._written: dict[str, Any] = {}  # None: deleted

    def apply(self, writes: Sequence[Write]) -> None:
        for write in writes:
            self._written[write.key] = write.value

    def __getitem__(self, key: str) -> Any:
        if key not in self._written:
            return self._table[key]
        value = self._written[key]
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        yield from (key for key in self._table if key not in self._written)
        yield from (key for key, value in self._written.items() if value is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)
