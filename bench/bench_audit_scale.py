"""Audit at scale: writer start-up time and memory, query and verify, at 100k and 1M records.

For each size a log is written by the real writer (batches of 10,000), then opened in a fresh
process, which reports the time ``AuditLog.open`` took and the process's peak RSS (its
baseline: the same process importing everything and opening an empty log). Three ways:

- ``snapshot``: the normal start, from the snapshot of the last checkpoint (replays the tail);
- ``rebuild``: the snapshot deleted, so the whole log is read once (a log from before
  snapshots existed; also what the writer does when a snapshot no longer matches);
- ``old``: the writer as it was before (every event id in a set, whole log replayed at every
  start), when ``AUDIT_OLD_TREE`` points at a checkout of that code (commit 4b69c54).

Then per request: ``GET /verify`` incremental (the segments verified before are unchanged)
against a full verify, and a query for one actor's events (rare: one record in 10,000)
with and without the per-segment summaries.

Environment: ``AUDIT_SCALE_RECORDS`` (default ``100000,1000000``), ``AUDIT_OLD_TREE``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.audit.log import AuditLog
from services.audit.query import AuditQuery, query_log
from services.audit.segments import list_segments
from services.audit.signing import PUBLIC_KEY_FILE, load_or_create_signing_key, load_public_key
from services.audit.snapshot import SNAPSHOT_FILE
from services.audit.summaries import SegmentSummaries
from services.audit.verify import VerifyCache, verify_log
from shared.events import Actor, Event
from shared.logging import configure_logging

BATCH = 10_000
_PROBE = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from services.audit.log import AuditLog
from services.audit.signing import load_or_create_signing_key
from shared.logging import configure_logging
configure_logging("warning", "json")
directory = Path(sys.argv[2])
key = load_or_create_signing_key(directory, None)
def status(name):  # this process's own figures (ru_maxrss would count the parent's, via fork)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) / 1024
before = status("VmRSS")
started = time.perf_counter()
audit_log = AuditLog.open(directory, signing_key=key)
seconds = time.perf_counter() - started
head = audit_log.head_seq
print(json.dumps({"seconds": seconds, "rss_mib": status("VmRSS"), "peak_mib": status("VmHWM"),
                  "rss_before_mib": before, "head_seq": head}))
audit_log.close()
"""


def _events(start: int, count: int) -> list[Event]:
    return [
        Event(
            id=f"evt-{n}",
            type="token.created",
            source=("tokens", "rules", "users")[n % 3],
            sequence=n // 3 + 1,
            # Actors spread over the whole log; a token's events close together in time.
            actor=Actor(user_id=f"user-{n % 10_000}", token_id=f"tok-{n // 1000}"),
            subject=f"token/t{n}",
            data={"kind": "team", "name": f"ci-{n}", "team": "payments"},
        )
        for n in range(start, start + count)
    ]


def _write(directory: Path, records: int) -> float:
    key = load_or_create_signing_key(directory, None)
    audit_log = AuditLog.open(directory, signing_key=key)
    elapsed = 0.0
    try:
        for start in range(0, records, BATCH):
            batch = _events(start, min(BATCH, records - start))
            started = time.perf_counter()
            audit_log.append(batch)
            elapsed += time.perf_counter() - started
    finally:
        audit_log.close()
    return records / elapsed


def _probe(tree: Path, directory: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tree), str(directory)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _start_up(directory: Path, empty: Path) -> dict[str, Any]:
    here = Path(__file__).resolve().parents[1]
    base = _probe(here, empty)
    figures: dict[str, Any] = {
        "empty_log_rss_mib": round(base["rss_mib"], 1),
        "empty_log_peak_mib": round(base["peak_mib"], 1),
    }

    def record(name: str, probe: dict[str, Any]) -> None:
        figures[f"{name}_s"] = round(probe["seconds"], 4)
        figures[f"{name}_rss_mib"] = round(probe["rss_mib"], 1)
        figures[f"{name}_peak_mib"] = round(probe["peak_mib"], 1)

    record("snapshot", _probe(here, directory))
    old_tree = os.environ.get("AUDIT_OLD_TREE")
    if old_tree:  # before the rebuild: the old writer leaves files alone that it does not know
        record("old", _probe(Path(old_tree), directory))
    (directory / SNAPSHOT_FILE).unlink()
    record("rebuild", _probe(here, directory))  # writes a fresh snapshot when it closes
    return figures


def run() -> dict[str, Any]:
    configure_logging("warning", "json")
    sizes = [int(s) for s in os.environ.get("AUDIT_SCALE_RECORDS", "100000,1000000").split(",")]
    root = Path(tempfile.mkdtemp(prefix="bench-audit-scale-"))
    results: dict[str, Any] = {}
    try:
        empty = root / "empty"
        empty.mkdir()
        for records in sizes:
            directory = root / f"log-{records}"
            directory.mkdir()
            figures: dict[str, Any] = {"write_events_per_s": round(_write(directory, records))}
            figures.update(_start_up(directory, empty))
            figures.update(_per_request(directory))
            results[str(records)] = figures
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _per_request(directory: Path) -> dict[str, Any]:
    """Verify and a selective query, each cold (first request) and warm (the next ones)."""
    public_key = load_public_key(directory / PUBLIC_KEY_FILE)
    cache = VerifyCache()
    full_s = _timed(lambda: verify_log(directory, public_key))
    first_s = _timed(lambda: verify_log(directory, public_key, cache=cache))
    warm = sorted(_timed(lambda: verify_log(directory, public_key, cache=cache)) for _ in range(5))
    figures: dict[str, Any] = {
        "segments": len(list_segments(directory)),
        "verify_full_s": round(full_s, 3),
        "verify_incremental_first_s": round(first_s, 3),
        "verify_incremental_next_s_median": round(warm[2], 4),
    }
    summaries = SegmentSummaries(directory)
    queries = {
        "token": AuditQuery(token_id="tok-424"),  # 1,000 records close together
        "actor": AuditQuery(actor="user-4242"),  # one record in 10,000, in every segment
    }

    def asking(query: AuditQuery, with_summaries: SegmentSummaries | None) -> Callable[[], object]:
        return lambda: query_log(directory, query, limit=1000, summaries=with_summaries)

    for name, query in queries.items():
        scan = sorted(_timed(asking(query, None)) for _ in range(3))
        first = _timed(asking(query, summaries))
        warm_q = sorted(_timed(asking(query, summaries)) for _ in range(3))
        figures[f"query_{name}_scan_s_median"] = round(scan[1], 4)
        figures[f"query_{name}_summaries_first_s"] = round(first, 3)
        figures[f"query_{name}_summaries_next_s_median"] = round(warm_q[1], 4)
    return figures
