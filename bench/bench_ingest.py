"""Ingest benchmark: alerts/s through ``/v1/ingest/alertmanager`` against a bare endpoint, and
request latency at a steady 500 webhooks/s.

1. Throughput: one server process (uvicorn + FastAPI through ``shared.serving``, the ingest
   app) serves both the real webhook endpoint and a bare one mounted on the same app: it
   parses the body and produces each ``alerts[]`` entry as it is (same producer, acks=all) -
   no token check, no conversion. Webhooks of 1 and of 50 alerts; the two endpoints alternate
   over rounds in the same run. Load: 32 keep-alive connections from a minimal HTTP/1.1 client
   in this process (cheap enough not to be the bottleneck), each sending its next webhook as
   soon as the previous one is answered.
2. Latency: a steady 500 webhooks/s (1 alert each) for 10 s, open loop: each request's latency
   runs from its scheduled send time to its answer, so a stall is not hidden. The bare
   endpoint is measured the same way right after, as the same-run baseline.

Environment: ``KAFKA_BOOTSTRAP_SERVERS`` / database 15 of ``REDIS_URL``'s server (flushed).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import orjson
from fastapi import Request, Response

from bench import redis_url as bench_redis_url
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.kafka import ensure_topics
from shared.logging import configure_logging
from shared.redis import make_redis

CONNECTIONS = 32
ROUND_SECONDS = 5.0
ROUNDS = 2
LATENCY_RATE = 500
LOW_RATE = 100
LATENCY_SECONDS = 10
WARMUP_REQUESTS = 200
BARE_PATH = "/bench/bare"
AM_PATH = "/v1/ingest/alertmanager"
HMAC = "test-only-hmac-secret-0123456789abcdef"  # the one services.tokens.testing uses


def _webhook(size: int, seq: int) -> bytes:
    alerts = [
        {
            "status": "firing",
            "labels": {
                "alertname": "HighLatency",
                "service": f"svc-{i % 7}",
                "severity": "high",
                "instance": f"10.0.0.{i}:9100",
                "job": "node",
            },
            "annotations": {"summary": f"p99 latency above 2s on svc-{i % 7}"},
            "startsAt": "2026-12-01T09:00:00.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=latency",
            "fingerprint": f"{seq:08x}{i:04x}",
        }
        for i in range(size)
    ]
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}',
        "status": "firing",
        "receiver": "alertyard",
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }
    return orjson.dumps(body)


class _Connection:
    """One keep-alive HTTP/1.1 connection: write a request, read the status and body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def post(self, path: str, body: bytes, token: str) -> int:
        head = (
            f"POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
            f"authorization: Bearer {token}\r\ncontent-length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        self.writer.close()


async def _throughput(port: int, token: str, path: str, size: int) -> float:
    """Alerts/s over ``ROUND_SECONDS`` with ``CONNECTIONS`` requests in flight."""
    connections = [await _Connection.open(port) for _ in range(CONNECTIONS)]
    bodies = [_webhook(size, n) for n in range(64)]
    done = 0
    stop_at = time.perf_counter() + ROUND_SECONDS

    async def worker(conn: _Connection, offset: int) -> None:
        nonlocal done
        n = offset
        while time.perf_counter() < stop_at:
            status = await conn.post(path, bodies[n % len(bodies)], token)
            if status != 202:
                raise RuntimeError(f"{path} answered {status}")
            done += 1
            n += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c, i) for i, c in enumerate(connections)))
    elapsed = time.perf_counter() - started
    for conn in connections:
        conn.close()
    return done * size / elapsed


async def _latency(port: int, token: str, path: str, rate: int) -> dict[str, float]:
    pool: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        pool.put_nowait(await _Connection.open(port))
    latencies: list[float] = []
    interval = 1.0 / rate
    total = rate * LATENCY_SECONDS
    start = time.perf_counter() + 0.1

    async def one(n: int) -> None:
        scheduled = start + n * interval
        conn = await pool.get()
        status = await conn.post(path, _webhook(1, n), token)
        latencies.append(time.perf_counter() - scheduled)
        pool.put_nowait(conn)
        if status != 202:
            raise RuntimeError(f"answered {status}")

    tasks = []
    for n in range(total):
        delay = start + n * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)
    achieved = total / (time.perf_counter() - start)
    while not pool.empty():
        pool.get_nowait().close()
    latencies.sort()
    return {
        "rate_target": rate,
        "rate_achieved": round(achieved, 1),
        "requests": total,
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2),
    }


async def _bench() -> dict[str, Any]:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    redis_url = bench_redis_url()
    redis = make_redis(redis_url)
    await redis.flushdb()
    token, _ = await issue_token(
        redis, test_settings(redis_url), kind="global", permissions=[Permission.alerts_publish]
    )
    topic = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [topic], partitions=6)
    env = {
        **os.environ,
        "ALERTYARD_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "ALERTYARD_REDIS_URL": redis_url,
        "ALERTYARD_TOPIC_ALERTS": topic,
        "ALERTYARD_TOKENS_HMAC_SECRET": HMAC,
        "ALERTYARD_INGEST_RATE_LIMIT": "",
        "ALERTYARD_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, before any timing
        [sys.executable, "-m", "bench.bench_ingest", "--serve"],
        env=env,
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        port = int(await asyncio.to_thread(server.stdout.readline))
        warm = await _Connection.open(port)
        for n in range(WARMUP_REQUESTS):
            for path in (BARE_PATH, AM_PATH):
                await warm.post(path, _webhook(1 + n % 50, n), token)
        warm.close()
        results: dict[str, Any] = {}
        for size in (1, 50):
            rounds: dict[str, list[float]] = {"bare": [], "ingest": []}
            for _ in range(ROUNDS):
                rounds["bare"].append(await _throughput(port, token, BARE_PATH, size))
                rounds["ingest"].append(await _throughput(port, token, AM_PATH, size))
            bare, ingest = max(rounds["bare"]), max(rounds["ingest"])
            results[f"webhook_{size}"] = {
                "bare_alerts_per_s": round(bare),
                "ingest_alerts_per_s": round(ingest),
                "ratio": round(ingest / bare, 3),
                "target_ratio": 0.7,
                "rounds": {k: [round(v) for v in vs] for k, vs in rounds.items()},
            }
        results["latency_at_500_webhooks_per_s"] = {
            "ingest": await _latency(port, token, AM_PATH, LATENCY_RATE),
            "bare": await _latency(port, token, BARE_PATH, LATENCY_RATE),
            "target_p99_ms": 20,
        }
        # Informative only: a rate a loaded machine can sustain shows the service's own latency.
        results[f"latency_at_{LOW_RATE}_webhooks_per_s"] = {
            "ingest": await _latency(port, token, AM_PATH, LOW_RATE),
            "bare": await _latency(port, token, BARE_PATH, LOW_RATE),
        }
        return results
    finally:
        server.terminate()
        server.wait(timeout=30)
        await redis.flushdb()
        await redis.aclose()


def _serve() -> None:
    """The server process: the ingest app plus the bare endpoint, on a port it prints."""
    import socket

    from services.ingest.app import create_app
    from shared.runtime import tune_gc
    from shared.serving import http_server
    from shared.settings import IngestSettings

    settings = IngestSettings()
    app = create_app(settings)

    @app.post(BARE_PATH, include_in_schema=False)
    async def bare(request: Request) -> Response:
        # Parse and produce only: each alert as it came, keyed by its fingerprint, acks=all.
        doc = orjson.loads(await request.body())
        producer = request.app.state.ingest.publisher.producer
        futures = [
            await producer.send(
                settings.topics.alerts, orjson.dumps(a), key=a["fingerprint"].encode()
            )
            for a in doc["alerts"]
        ]
        await asyncio.gather(*futures)
        return Response(b'{"accepted": %d}' % len(futures), status_code=202)

    async def main() -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(2048)  # connections queue until uvicorn accepts them
        server = http_server(app, host="127.0.0.1", port=sock.getsockname()[1])
        async with app.router.lifespan_context(app):
            tune_gc()
            print(sock.getsockname()[1], flush=True)
            await server.serve(sockets=[sock])

    asyncio.run(main())


def run() -> dict[str, Any]:
    configure_logging("warning", "json")
    return asyncio.run(_bench())


if __name__ == "__main__":
    configure_logging("warning", "json")  # to stderr: stdout is the port / the results
    if sys.argv[1:] == ["--serve"]:
        _serve()
    else:
        print(json.dumps(run(), indent=2))
