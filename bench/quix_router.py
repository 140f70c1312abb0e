"""(c) The peer a Python user would pick: a Quix Streams app routing alerts by a field.

Runs in its own pinned environment (quixstreams pins an older confluent-kafka than the
project), so it imports nothing from the project::

    uv run --no-project --with quixstreams==3.28.1 python bench/quix_router.py SPEC

SPEC (JSON): bootstrap, source, team_prefix, teams, group, count. Prints one JSON line:
the seconds from partition assignment to the commit that follows the last record.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from quixstreams import Application  # type: ignore[import-not-found]  # own pinned env


def main(spec: dict[str, Any]) -> None:
    count = int(spec["count"])
    seen = [0]

    def processed(_topic: str, _partition: int, _offset: int) -> None:
        seen[0] += 1
        if seen[0] >= count:
            app.stop()  # the run loop ends by committing its checkpoint (flush, then commit)

    app = Application(
        broker_address=spec["bootstrap"],
        consumer_group=spec["group"],
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        # The same delivery settings as every other loop of the benchmark; Quix's default
        # commit interval (5 s) would only add a tail to so short a run.
        commit_interval=1.0,
        producer_extra_config={
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
        },
        loglevel=logging.WARNING,
        auto_create_topics=False,
        on_message_processed=processed,
    )
    source = app.topic(spec["source"], key_deserializer="bytes", value_deserializer="json")
    teams = {
        service: app.topic(spec["team_prefix"] + team, key_serializer="bytes")
        for team in spec["teams"]
        for service in (f"{team}-svc", f"{team}-db")
    }
    fallback = app.topic(spec["team_prefix"] + "sre", key_serializer="bytes")
    marks: dict[str, float] = {}

    def by_service(value: Any, _key: Any, _ts: int, _headers: Any) -> Any:
        return teams.get(value.get("service"), fallback)

    on_assign = app._on_assign  # no public hook for the assignment time

    def assigned(consumer: Any, partitions: Any) -> None:
        marks.setdefault("assigned", time.perf_counter())
        on_assign(consumer, partitions)

    app._on_assign = assigned  # wrapped, as above
    sdf = app.dataframe(source)
    sdf.to_topic(by_service)
    app.run()
    end = time.perf_counter()
    print(json.dumps({"seconds": end - marks["assigned"], "records": seen[0]}), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
