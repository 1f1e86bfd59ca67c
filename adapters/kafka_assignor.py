"""A consumer-group assignor that gives every partition to one member (the others stand by).

Projections need the global order (positions), which spans partitions, so one worker must read
all of them; a second worker in the same group is a hot standby that takes over on rebalance.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata


class SingleOwnerAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
    name = "flp-single-owner"
    version = 0

    @classmethod
    def assign(
        cls,
        cluster: ClusterMetadata,
        members: Mapping[str, ConsumerProtocolMemberMetadata],
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        owner = min(members) if members else None
        assignment: dict[str, ConsumerProtocolMemberAssignment] = {}
        for member_id, metadata in members.items():
            topics: list[tuple[str, list[int]]] = []
            if member_id == owner:
                for topic in sorted(set(metadata.subscription)):
                    partitions = cluster.partitions_for_topic(topic)
                    if partitions:
                        topics.append((topic, sorted(partitions)))
            assignment[member_id] = ConsumerProtocolMemberAssignment(cls.version, topics, b"")
        return assignment

    @classmethod
    def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(cls.version, list(topics), b"")

    @classmethod
    def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
        pass
