"""A throwaway redis-server with the stack's settings (stack/redis.conf), for crash tests.

It listens on a Unix socket in its own temporary directory (no TCP port to guess) and keeps
its append-only file there, so a test can ``kill -9`` it and start it again on the same data
without touching the shared Redis of the test session. With ``cluster=True`` it is a one-node
Redis Cluster owning every slot: it refuses a script or transaction whose declared keys span
slots (``CROSSSLOT``), as a real cluster does. With ``fsync_always=True`` it acknowledges a
write only once it is on disk: the stack's ``everysec`` postpones the AOF write for up to 2 s
while a slow fsync runs (docs/operations.md, recovery point), and a kill -9 then loses what it
acknowledged meanwhile; a drill of another component's guarantee must not depend on the disk.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.redis import make_redis
from tests._infra import ROOT

__all__ = ["REDIS_CONF", "ThrowawayRedis"]

REDIS_CONF = ROOT / "stack" / "redis.conf"


class ThrowawayRedis:
    def __init__(self, *, cluster: bool = False, fsync_always: bool = False) -> None:
        # A short path: a Unix socket path is limited to ~108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="ay-redis-"))
        self.socket = self.dir / "redis.sock"
        self.cluster = cluster
        self.fsync_always = fsync_always
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def client(self) -> Redis:
        return make_redis(self.url)

    def _spawn(self) -> subprocess.Popen[bytes]:
        args = ["--port", "0", "--unixsocket", str(self.socket), "--dir", str(self.dir)]
        if self.cluster:  # no port: the cluster bus is never used by a single node
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        if self.fsync_always:
            args += ["--appendfsync", "always"]
        with (self.dir / "redis.log").open("ab") as log:
            return subprocess.Popen(
                ["redis-server", str(REDIS_CONF), *args], stdout=log, stderr=subprocess.STDOUT
            )

    async def start(self, *, within_s: float = 30.0) -> None:
        """Start redis-server on the data in :attr:`dir` and wait until it answers PING."""
        self._proc = self._spawn()
        client = self.client()
        try:
            async with asyncio.timeout(within_s):
                while True:
                    if self._proc.poll() is not None:
                        raise AssertionError(f"redis-server exited; see {self.dir / 'redis.log'}")
                    try:
                        if await client.ping() and await self._cluster_ready(client):
                            return
                    except (RedisConnectionError, BusyLoadingError, FileNotFoundError):
                        pass
                    await asyncio.sleep(0.05)  # polling for readiness, not synchronisation
        finally:
            await client.aclose()

    async def _cluster_ready(self, client: Redis) -> bool:
        """True when not a cluster, or once this node owns every slot and says ``ok``."""
        if not self.cluster:
            return True
        info = await client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
        text = info.decode() if isinstance(info, bytes) else str(info)
        if "cluster_slots_assigned:16384" not in text:
            # ADDSLOTSRANGE: Redis 7.0+ (redis-py leaves execute_command unannotated)
            await client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)  # type: ignore[no-untyped-call]
            return False
        return "cluster_state:ok" in text

    def kill9(self) -> None:
        """SIGKILL, then reap it: no shutdown hook runs, nothing is flushed on the way out."""
        assert self._proc is not None
        self._proc.kill()
        self._proc.wait()
        self._proc = None
        self.socket.unlink(missing_ok=True)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait()
            self._proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
