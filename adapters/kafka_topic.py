"""Topic provisioning for the relay: create the events topic if it does not exist."""

from __future__ import annotations

import logging
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36


async def ensure_topic(
    options: dict[str, Any],
    topic: str,
    partitions: int,
    replication_factor: int = 1,
    request_timeout_ms: int = 10_000,
) -> bool:
    """Create `topic` if missing; True if this call created it. A broker that refuses (ACLs,
    auto-provisioned topics) is logged, not fatal: the relay then checks the partitions exist."""
    admin = AIOKafkaAdminClient(**options, request_timeout_ms=request_timeout_ms)
    try:
        await admin.start()
        response = await admin.create_topics([NewTopic(topic, partitions, replication_factor)])
    finally:
        await admin.close()
    for _name, code, *rest in response.topic_errors:
        if code == 0:
            log.info("created topic %s with %d partitions", topic, partitions)
            return True
        if code != TOPIC_ALREADY_EXISTS:
            log.warning("could not create topic %s (error %s: %s)", topic, code, rest[-1] if rest else "")
    return False
