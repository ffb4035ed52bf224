"""The DynamoDB key scheme, exactly as the seed's example item stores it, plus GSI5 and queue items.

GSI5 (partition key only) finds one execution by tenant and execution_id in one read; the seed has
no such index. A runner queue snapshot shares the tenant's partition under its own sort key.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from execution_stream.domain.models import KEY_SEPARATOR, Execution, ExecutionStatus
from execution_stream.domain.store import InvalidPageKeyError, PageKey

PK = "PK"
SK = "SK"
TENANT_PREFIX = "TENANT"
JIT_EVENT_PREFIX = "JIT_EVENT"
RUN_PREFIX = "RUN"
STATUS_PREFIX = "STATUS"
PLAN_ITEM_PREFIX = "PLAN_ITEM"
EXECUTION_PREFIX = "EXECUTION"
QUEUE_PREFIX = "QUEUE"
GSI5PK = "GSI5PK"


class KeyFormatError(ValueError):
    """A key component cannot be encoded, or a stored key does not follow the scheme."""


class IndexName(StrEnum):
    GSI1 = "GSI1"
    GSI2 = "GSI2"
    GSI3 = "GSI3"
    GSI4 = "GSI4"
    GSI5 = "GSI5"


# The GSIs that list a tenant's executions newest first (access patterns 1-4).
LISTING_INDEXES = (IndexName.GSI1, IndexName.GSI2, IndexName.GSI3, IndexName.GSI4)
# (index, partition key attribute, sort key attribute) for each listing GSI, for table creation.
GSI_KEY_ATTRIBUTES: tuple[tuple[IndexName, str, str], ...] = tuple(
    (index, f"{index.value}PK", f"{index.value}SK") for index in LISTING_INDEXES
)
# GSI5 has a partition key only: one tenant's one execution (access pattern 6).
LOOKUP_INDEX_KEY_ATTRIBUTE: tuple[IndexName, str] = (IndexName.GSI5, GSI5PK)
KEY_ATTRIBUTES: frozenset[str] = frozenset(
    {PK, SK, GSI5PK} | {name for _, pk, sk in GSI_KEY_ATTRIBUTES for name in (pk, sk)}
)


@dataclass(frozen=True)
class IndexQuery:
    index: IndexName
    partition_key_name: str
    partition_key_value: str

    @property
    def sort_key_name(self) -> str:
        return f"{self.index.value}SK"

    @property
    def page_key_names(self) -> tuple[str, str, str, str]:
        """The attributes of a LastEvaluatedKey on this index: the table's keys and the index's."""
        return (PK, SK, self.partition_key_name, self.sort_key_name)


def _join(*components: str) -> str:
    for component in components:
        if not component:
            raise KeyFormatError("key components must not be empty")
        if KEY_SEPARATOR in component:
            raise KeyFormatError(f"key component {component!r} contains {KEY_SEPARATOR!r}")
    return KEY_SEPARATOR.join(components)


def _split(key: str, *prefixes: str | None) -> list[str]:
    """Split `key` and check its shape: a str prefix must match, None marks a value slot."""
    parts = key.split(KEY_SEPARATOR)
    if len(parts) != len(prefixes):
        raise KeyFormatError(f"malformed key {key!r}")
    for part, prefix in zip(parts, prefixes, strict=True):
        if (prefix is None and not part) or (prefix is not None and part != prefix):
            raise KeyFormatError(f"malformed key {key!r}")
    return [part for part, prefix in zip(parts, prefixes, strict=True) if prefix is None]


def _status(value: str, key: str) -> ExecutionStatus:
    try:
        return ExecutionStatus(value)
    except ValueError:
        raise KeyFormatError(f"unknown status {value!r} in key {key!r}") from None


def partition_key(tenant_id: str) -> str:
    return _join(TENANT_PREFIX, tenant_id)


def sort_key(jit_event_id: str, execution_id: str) -> str:
    return _join(JIT_EVENT_PREFIX, jit_event_id, RUN_PREFIX, execution_id)


def gsi1_pk(tenant_id: str) -> str:
    return partition_key(tenant_id)


def gsi2_pk(tenant_id: str, status: ExecutionStatus) -> str:
    return _join(TENANT_PREFIX, tenant_id, STATUS_PREFIX, status.value)


def gsi3_pk(tenant_id: str, plan_item_slug: str) -> str:
    return _join(TENANT_PREFIX, tenant_id, PLAN_ITEM_PREFIX, plan_item_slug)


def gsi4_pk(tenant_id: str, plan_item_slug: str, status: ExecutionStatus) -> str:
    return _join(TENANT_PREFIX, tenant_id, PLAN_ITEM_PREFIX, plan_item_slug, STATUS_PREFIX, status.value)


def gsi5_pk(tenant_id: str, execution_id: str) -> str:
    return _join(TENANT_PREFIX, tenant_id, EXECUTION_PREFIX, execution_id)


def queue_snapshot_sort_key(job_runner: str) -> str:
    """`QUEUE#<job_runner>`: runner names may contain '#', so this key is never split."""
    if not job_runner:
        raise KeyFormatError("job_runner must not be empty")
    return f"{QUEUE_PREFIX}{KEY_SEPARATOR}{job_runner}"


def queue_snapshot_key(tenant_id: str, job_runner: str) -> dict[str, str]:
    """The primary key of the runner queue snapshot of `tenant_id` and `job_runner`."""
    return {PK: partition_key(tenant_id), SK: queue_snapshot_sort_key(job_runner)}


def gsi_sort_key(created_at: str) -> str:
    """Every GSI sorts by creation time; the timestamp format makes text order time order."""
    if not created_at:
        raise KeyFormatError("created_at must not be empty")
    return created_at


def parse_partition_key(pk: str) -> str:
    (tenant_id,) = _split(pk, TENANT_PREFIX, None)
    return tenant_id


def parse_gsi1_pk(pk: str) -> str:
    return parse_partition_key(pk)


def parse_sort_key(sk: str) -> tuple[str, str]:
    jit_event_id, execution_id = _split(sk, JIT_EVENT_PREFIX, None, RUN_PREFIX, None)
    return jit_event_id, execution_id


def parse_gsi2_pk(pk: str) -> tuple[str, ExecutionStatus]:
    tenant_id, status = _split(pk, TENANT_PREFIX, None, STATUS_PREFIX, None)
    return tenant_id, _status(status, pk)


def parse_gsi3_pk(pk: str) -> tuple[str, str]:
    tenant_id, plan_item_slug = _split(pk, TENANT_PREFIX, None, PLAN_ITEM_PREFIX, None)
    return tenant_id, plan_item_slug


def parse_gsi5_pk(pk: str) -> tuple[str, str]:
    tenant_id, execution_id = _split(pk, TENANT_PREFIX, None, EXECUTION_PREFIX, None)
    return tenant_id, execution_id


def parse_gsi4_pk(pk: str) -> tuple[str, str, ExecutionStatus]:
    tenant_id, plan_item_slug, status = _split(
        pk, TENANT_PREFIX, None, PLAN_ITEM_PREFIX, None, STATUS_PREFIX, None
    )
    return tenant_id, plan_item_slug, _status(status, pk)


def execution_keys(execution: Execution) -> dict[str, str]:
    """Every key attribute of `execution`'s item (GSI2PK and GSI4PK change with its status).

    GSI5PK is not in the seed's item: it lets GET /executions/{id} find the item in one read.
    """
    created_at = gsi_sort_key(execution.created_at)
    tenant, plan_item, status = execution.tenant_id, execution.plan_item_slug, execution.status
    return {
        PK: partition_key(tenant),
        SK: sort_key(execution.jit_event_id, execution.execution_id),
        "GSI1PK": gsi1_pk(tenant),
        "GSI2PK": gsi2_pk(tenant, status),
        "GSI3PK": gsi3_pk(tenant, plan_item),
        "GSI4PK": gsi4_pk(tenant, plan_item, status),
        GSI5PK: gsi5_pk(tenant, execution.execution_id),
        "GSI1SK": created_at,
        "GSI2SK": created_at,
        "GSI3SK": created_at,
        "GSI4SK": created_at,
    }


def index_for_filter(
    tenant_id: str, status: ExecutionStatus | None, plan_item_slug: str | None
) -> IndexQuery:
    """The GSI serving a tenant's executions filtered by status and/or plan item (patterns 1-4)."""
    if status is None:
        if plan_item_slug is None:
            return IndexQuery(IndexName.GSI1, "GSI1PK", gsi1_pk(tenant_id))
        return IndexQuery(IndexName.GSI3, "GSI3PK", gsi3_pk(tenant_id, plan_item_slug))
    if plan_item_slug is None:
        return IndexQuery(IndexName.GSI2, "GSI2PK", gsi2_pk(tenant_id, status))
    return IndexQuery(IndexName.GSI4, "GSI4PK", gsi4_pk(tenant_id, plan_item_slug, status))


def check_page_key(page_key: PageKey, tenant_id: str, index: IndexQuery) -> None:
    """A start key must name this index's page key attributes, none empty, and lie in the partition
    the query reads, of the tenant's own table partition: else DynamoDB refuses it, or worse, reads on
    from another tenant's item."""
    names_fit = set(page_key) == set(index.page_key_names)
    if not names_fit or page_key[index.partition_key_name] != index.partition_key_value:
        raise InvalidPageKeyError("the continuation key belongs to another query")
    if page_key[PK] != partition_key(tenant_id):
        raise InvalidPageKeyError("the continuation key belongs to another tenant")
    if not all(page_key.values()):
        raise InvalidPageKeyError("the continuation key has an empty attribute")
