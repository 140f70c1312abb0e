"""Team topics created on demand; the names already known are cached in memory."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from shared.kafka import ensure_topics
from shared.logging import get_logger

__all__ = ["TopicProvisioner"]

log = get_logger(__name__)


class TopicProvisioner:
    """Creates missing topics with the configured partitions and replication, once each."""

    def __init__(self, bootstrap: str, *, partitions: int, replication_factor: int) -> None:
        self._bootstrap = bootstrap
        self._partitions = partitions
        self._replication_factor = replication_factor
        self._known: set[str] = set()
        self._lock = asyncio.Lock()

    def is_known(self, topic: str) -> bool:
        return topic in self._known

    async def ensure(self, topics: Iterable[str]) -> None:
        """Create the topics not seen before (no admin round trip when all are known)."""
        missing = {t for t in topics if t not in self._known}
        if not missing:
            return
        async with self._lock:
            missing -= self._known
            if not missing:
                return
            await ensure_topics(
                self._bootstrap,
                sorted(missing),
                partitions=self._partitions,
                replication_factor=self._replication_factor,
            )
            self._known |= missing
            log.info("topics_ensured", topics=sorted(missing))
