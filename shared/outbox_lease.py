"""The lease that lets one outbox relay per source publish, with a fencing token.

Acquire, extend and release are each one Lua script (compare-and-set on the holder's value), so
no relay can extend or drop a lease another relay took in between. Every acquisition takes the
next number of a per-source counter (the fencing token) and stores ``<owner>/<token>`` as the
lease's value; entries are deleted from the outbox only by a script that first checks that
value, so a relay that lost its lease (paused, partitioned from Redis) cannot trim what the new
holder is publishing. The lease, its counter and the stream share one Redis Cluster slot
(the control plane's, :mod:`shared.keyspace`): every script declares all the keys it touches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, cast

from redis.asyncio import Redis

__all__ = ["OutboxKeys", "OutboxLease"]

_ACQUIRE: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '/' .. fence, 'PX', ARGV[2])
return fence
"""
_EXTEND: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""
# KEYS: lease, stream. ARGV: the holder's value, then the entry ids. The backlog left, or -1.
_FENCED_DELETE: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('XDEL', KEYS[2], unpack(ARGV, 2))
return redis.call('XLEN', KEYS[2])
"""


@dataclass(frozen=True)
class OutboxKeys:
    """Every key of one source's outbox (built by :func:`shared.outbox.outbox_keys`)."""

    stream: str
    """The staged events (a Redis stream)."""
    seq: str
    """The source's last sequence number."""
    lease: str
    """``<owner>/<fence>`` of the relay publishing the stream now."""
    fence: str
    """The last fencing token handed out."""


class OutboxLease:
    """One relay's view of a source's lease; :attr:`token` is 0 while it holds none."""

    def __init__(self, redis: Redis, keys: OutboxKeys, *, owner: str, lease_ms: int) -> None:
        self._keys = keys
        self._owner = owner
        self._lease_ms = lease_ms
        self._acquire = redis.register_script(_ACQUIRE)
        self._extend = redis.register_script(_EXTEND)
        self._release = redis.register_script(_RELEASE)
        self._delete = redis.register_script(_FENCED_DELETE)
        self.token = 0

    @property
    def _value(self) -> str:
        return f"{self._owner}/{self.token}"

    async def hold(self) -> bool:
        """Extend the lease this relay holds, or take it when it is free; False when another
        relay holds it (or this relay's lease expired and was taken meanwhile)."""
        if self.token:
            extended = await self._extend(
                keys=[self._keys.lease], args=[self._value, self._lease_ms]
            )
            if extended:
                return True
            self.token = 0  # lost: another relay may be publishing these entries now
        fence = await self._acquire(
            keys=[self._keys.lease, self._keys.fence], args=[self._owner, self._lease_ms]
        )
        self.token = int(cast(int, fence))
        return self.token > 0

    async def release(self) -> None:
        """Give the lease up at once (on shutdown), so another relay need not wait it out."""
        if self.token:
            await self._release(keys=[self._keys.lease], args=[self._value])
            self.token = 0

    async def delete(self, entry_ids: list[bytes]) -> int | None:
        """Delete published entries if this relay still holds the lease; the backlog left, or
        None when the lease was lost (the entries stay for the new holder)."""
        left = int(
            cast(
                int,
                await self._delete(
                    keys=[self._keys.lease, self._keys.stream], args=[self._value, *entry_ids]
                ),
            )
        )
        if left < 0:
            self.token = 0
            return None
        return left
