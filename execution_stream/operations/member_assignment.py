"""Who owns which partition: the members of a consumer group and their decoded assignments.

DescribeGroups returns each member's assignment as the bytes its group leader sent. For the "consumer"
protocol (aiokafka's range and round-robin assignors, and faust's own assignor) those bytes are
Kafka's ConsumerProtocolMemberAssignment. faust lists there its active partitions and, for changelog
topics, its standby replicas too; its user data (zlib-compressed JSON) tells them apart, so an active
owner is preferred to a standby one. Bytes that do not decode give a member with no known partitions.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True)
class Member:
    consumer_id: str
    host: str
    client_id: str


@dataclass(frozen=True)
class MemberPartitions:
    actives: frozenset[TopicPartitionKey]
    standbys: frozenset[TopicPartitionKey]


NOTHING = MemberPartitions(frozenset(), frozenset())


def decode_assignment(data: bytes) -> MemberPartitions:
    try:
        assignment = ConsumerProtocolMemberAssignment.decode(data)
        listed = frozenset(
            (str(topic), int(number)) for topic, numbers in assignment.assignment for number in numbers
        )
    except Exception:  # an assignor that is not Kafka's consumer protocol, or an empty assignment
        return NOTHING
    actives = _faust_actives(assignment.user_data)
    if actives is None:
        return MemberPartitions(listed, frozenset())
    return MemberPartitions(listed & actives, listed - actives)


def _faust_actives(user_data: bytes | None) -> frozenset[TopicPartitionKey] | None:
    """The active partitions faust's assignor wrote into the user data; None for any other assignor."""
    if not user_data:
        return None
    try:
        metadata: Any = json.loads(zlib.decompress(user_data))
        actives: Mapping[str, list[int]] = metadata["assignment"]["actives"]
        return frozenset(
            (str(topic), int(number)) for topic, numbers in actives.items() for number in numbers
        )
    except (zlib.error, ValueError, KeyError, TypeError, AttributeError):
        return None


def owners(members: Iterable[tuple[Member, MemberPartitions]]) -> dict[TopicPartitionKey, Member]:
    """Each partition's owner: the member holding it as active, else one holding it as a standby."""
    owned: dict[TopicPartitionKey, Member] = {}
    listed = list(members)
    for member, partitions in listed:
        for key in partitions.standbys:
            owned.setdefault(key, member)
    for member, partitions in listed:
        for key in partitions.actives:
            owned[key] = member
    return owned
