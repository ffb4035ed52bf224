"""Which partition a tenant's records are on: Kafka's default partitioner over the tenant id key.

Every topic the worker reads is keyed by tenant, and a table's changelog partition is the partition
of the record being processed, so a tenant's table keys live on this partition too.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def tenant_partition(tenant_id: str, partitions: int) -> int:
    """The partition aiokafka (our own sends) and the Java client's default partitioner choose."""
    hashed: int = murmur2(tenant_id.encode())
    return (hashed & 0x7FFFFFFF) % partitions
