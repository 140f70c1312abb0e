"""Backtest: replay a range of the alerts topic through a candidate ruleset.

Every alert in the range is evaluated by the baseline (usually the live ruleset) and by the
candidate; the report counts the alerts whose set of teams differs ("moved"), what each team
would gain or lose, and lists the first moved alerts with the rules that sent them.

The reader is a plain consumer **without a group**: it assigns partitions and seeks, so it never
joins, commits to or rebalances the router's consumer group. The end of the range is fixed when
the run starts, so a busy topic cannot keep a backtest running.

Records are parsed as the router parses them (size, UTF-8, JSON, the alert schema); the ones
it would reject are skipped and counted by reason. Tokens are not looked up: the ``team``
field is what the message carries (the router stamps it from a team token at intake).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from pydantic import BaseModel, ConfigDict

from services.router.intake import parse_value
from services.router.rejects import Rejection
from services.rules.engine.compiled import CompiledRuleset, compile_ruleset
from services.rules.engine.decision import RoutingDecision
from services.rules.engine.model import Ruleset
from shared import durations
from shared.alert import Alert
from shared.errors import UnavailableError, ValidationFailedError
from shared.kafka import make_consumer
from shared.logging import get_logger

__all__ = [
    "UNROUTED",
    "BacktestRange",
    "BacktestReport",
    "BacktestTally",
    "BacktestUnavailableError",
    "InvalidBacktestRangeError",
    "MovedAlert",
    "PartitionRange",
    "ProgressCallback",
    "ReplayRecord",
    "TeamShift",
    "parse_instant",
    "run_backtest",
]

log = get_logger(__name__)

UNROUTED: Final = "(unrouted)"
"""Stands for the unrouted topic in per-team counts (not a valid team name, so no clash)."""
DEFAULT_MOVED_LIMIT: Final = 50
_EMPTY: Final = "empty"
"""Skip reason of a record without a value (a tombstone); the router sees invalid JSON."""


class InvalidBacktestRangeError(ValidationFailedError):
    """The range asked for cannot be read (unknown topic, both an offset and a time, ...)."""

    code = "invalid_backtest_range"


class BacktestUnavailableError(UnavailableError):
    """Kafka did not answer, or the range stopped arriving before its end."""

    code = "backtest_unavailable"


# -- the range -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BacktestRange:
    """Which records to replay. Bounds apply to every partition of the topic."""

    topic: str
    from_offset: int | None = None
    """First offset to read; with ``since`` unset and this unset, the earliest one kept."""
    since: datetime | None = None
    """Start at the first record with a timestamp at or after this instant."""
    to_offset: int | None = None
    """Stop before this offset; with ``until`` unset and this unset, the end at start-up."""
    until: datetime | None = None
    """Stop before the first record with a timestamp at or after this instant."""
    max_records: int = 100_000
    """Read at most this many records in all (partitions interleave)."""

    def check(self) -> None:
        if self.from_offset is not None and self.since is not None:
            raise InvalidBacktestRangeError("give a start offset or a start time, not both")
        if self.to_offset is not None and self.until is not None:
            raise InvalidBacktestRangeError("give an end offset or an end time, not both")
        if self.from_offset is not None and self.from_offset < 0:
            raise InvalidBacktestRangeError("the start offset cannot be negative")
        if self.to_offset is not None and self.to_offset < 0:
            raise InvalidBacktestRangeError("the end offset cannot be negative")
        if self.max_records < 1:
            raise InvalidBacktestRangeError("max_records must be at least 1")
        if self.since and self.until and self.since >= self.until:
            raise InvalidBacktestRangeError("the start time must be before the end time")


def parse_instant(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 instant (UTC when it has no offset), or a duration ago: ``90s``, ``2h``."""
    try:
        return durations.parse_instant(text, now=now)
    except durations.InvalidDurationError as exc:
        raise InvalidBacktestRangeError(str(exc)) from None


# -- the report ------------------------------------------------------------------------------


class PartitionRange(BaseModel):
    """The offsets read in one partition: ``start`` included, ``end`` excluded."""

    model_config = ConfigDict(frozen=True)

    partition: int
    start: int
    end: int


class TeamShift(BaseModel):
    """How many alerts one team (or :data:`UNROUTED`) would gain and lose."""

    model_config = ConfigDict(frozen=True)

    team: str
    gained: int
    """Alerts the candidate sends to this team and the baseline does not."""
    lost: int
    """Alerts the baseline sends to this team and the candidate does not."""


class MovedAlert(BaseModel):
    """One alert whose teams differ between the baseline and the candidate."""

    model_config = ConfigDict(frozen=True)

    id: str | None
    """The alert's id; None when the producer sent none (the router derives one at intake)."""
    partition: int
    offset: int
    summary: str
    service: str
    before_teams: tuple[str, ...]
    after_teams: tuple[str, ...]
    before_rules: tuple[str, ...]
    """Names of the baseline rules that matched, in order."""
    after_rules: tuple[str, ...]


class BacktestReport(BaseModel):
    """What a backtest found."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partitions: tuple[PartitionRange, ...]
    baseline_version: int
    candidate_version: int
    read: int
    """Records read in the range, parsable or not."""
    skipped: int
    """Records the router would reject (not evaluated)."""
    skipped_reasons: dict[str, int]
    evaluated: int
    unchanged: int
    """Evaluated alerts that go to the same teams under both rulesets."""
    rules_changed: int
    """Of the unchanged, those reaching the same teams through different rules."""
    moved: int
    teams: tuple[TeamShift, ...]
    """Teams that gain or lose alerts, by name."""
    moved_alerts: tuple[MovedAlert, ...]
    """The first moved alerts, at most ``moved_limit``."""
    moved_limit: int
    complete: bool
    """False when ``max_records`` stopped the run before the end of the range."""
    duration_s: float = 0.0


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    """The part of a Kafka record a backtest needs."""

    partition: int
    offset: int
    value: bytes | None


class BacktestTally:
    """Evaluates batches of records with both rulesets and counts the differences."""

    def __init__(
        self,
        baseline: CompiledRuleset,
        candidate: CompiledRuleset,
        *,
        moved_limit: int = DEFAULT_MOVED_LIMIT,
    ) -> None:
        self.baseline = baseline
        self.candidate = candidate
        self.moved_limit = moved_limit
        self.read = 0
        self.skipped: Counter[str] = Counter()
        self.unchanged = 0
        self.rules_changed = 0
        self.moved = 0
        self.gained: Counter[str] = Counter()
        self.lost: Counter[str] = Counter()
        self.moved_alerts: list[MovedAlert] = []

    def add_batch(self, records: Sequence[ReplayRecord]) -> None:
        """Parse, evaluate with both rulesets (a batch at a time) and count."""
        self.read += len(records)
        alerts: list[Alert] = []
        kept: list[ReplayRecord] = []
        for record in records:
            alert = self._parse(record.value)
            if alert is not None:
                alerts.append(alert)
                kept.append(record)
        before = self.baseline.evaluate_many(alerts)
        after = self.candidate.evaluate_many(alerts)
        for record, alert, old, new in zip(kept, alerts, before, after, strict=True):
            self._compare(record, alert, old, new)

    def _parse(self, value: bytes | None) -> Alert | None:
        """The alert, or None after counting why the router would reject the record."""
        if not value:
            self.skipped[_EMPTY] += 1
            return None
        parsed = parse_value(value)  # the router's own payload checks
        if isinstance(parsed, Rejection):
            self.skipped[parsed.reason] += 1
            return None
        return parsed

    def _compare(
        self, record: ReplayRecord, alert: Alert, old: RoutingDecision, new: RoutingDecision
    ) -> None:
        # Order within the teams only says which topic is written first: a reordering is not
        # a move. Unrouted counts as a destination of its own.
        old_teams = set(old.teams) or {UNROUTED}
        new_teams = set(new.teams) or {UNROUTED}
        if old_teams == new_teams:
            self.unchanged += 1
            if old.rule_names != new.rule_names:
                self.rules_changed += 1
            return
        self.moved += 1
        self.gained.update(new_teams - old_teams)
        self.lost.update(old_teams - new_teams)
        if len(self.moved_alerts) < self.moved_limit:
            self.moved_alerts.append(
                MovedAlert(
                    id=alert.id if "id" in alert.model_fields_set else None,
                    partition=record.partition,
                    offset=record.offset,
                    summary=alert.summary,
                    service=alert.service,
                    before_teams=old.teams,
                    after_teams=new.teams,
                    before_rules=old.rule_names,
                    after_rules=new.rule_names,
                )
            )

    def report(
        self,
        *,
        topic: str,
        partitions: Sequence[PartitionRange] = (),
        complete: bool = True,
        duration_s: float = 0.0,
    ) -> BacktestReport:
        teams = sorted(set(self.gained) | set(self.lost))
        skipped = sum(self.skipped.values())
        return BacktestReport(
            topic=topic,
            partitions=tuple(partitions),
            baseline_version=self.baseline.version,
            candidate_version=self.candidate.version,
            read=self.read,
            skipped=skipped,
            skipped_reasons=dict(sorted(self.skipped.items())),
            evaluated=self.read - skipped,
            unchanged=self.unchanged,
            rules_changed=self.rules_changed,
            moved=self.moved,
            teams=tuple(TeamShift(team=t, gained=self.gained[t], lost=self.lost[t]) for t in teams),
            moved_alerts=tuple(self.moved_alerts),
            moved_limit=self.moved_limit,
            complete=complete,
            duration_s=round(duration_s, 3),
        )


# -- reading Kafka ---------------------------------------------------------------------------

ProgressCallback = Callable[[int, int], None]
"""Called after each batch with (records read so far, records expected in all)."""


async def run_backtest(
    *,
    bootstrap: str,
    window: BacktestRange,
    baseline: Ruleset | CompiledRuleset,
    candidate: Ruleset | CompiledRuleset,
    moved_limit: int = DEFAULT_MOVED_LIMIT,
    on_progress: ProgressCallback | None = None,
    batch_size: int = 1000,
    idle_timeout_s: float = 30.0,
) -> BacktestReport:
    """Replay ``window`` through both rulesets; returns the report.

    Raises :class:`InvalidBacktestRangeError` for a bad range or unknown topic and
    :class:`BacktestUnavailableError` when Kafka does not answer or records stop arriving.
    """
    window.check()
    started = time.monotonic()
    tally = BacktestTally(_compiled(baseline), _compiled(candidate), moved_limit=moved_limit)
    # No group: nothing is ever committed and the router's group never sees this reader.
    consumer = make_consumer(
        bootstrap,
        group_id=None,
        max_poll_records=batch_size,
        fetch_max_wait_ms=100,
        request_timeout_ms=15_000,
    )
    try:
        await consumer.start()
        ranges = await _resolve(consumer, bootstrap, window)
        complete = await _replay(
            consumer, window, ranges, tally, on_progress, batch_size, idle_timeout_s
        )
    except KafkaError as exc:
        raise BacktestUnavailableError(
            f"Kafka at {bootstrap} failed: {type(exc).__name__}"
        ) from None
    finally:
        await consumer.stop()
    report = tally.report(
        topic=window.topic,
        partitions=[
            PartitionRange(partition=tp.partition, start=s, end=e) for tp, (s, e) in ranges.items()
        ],
        complete=complete,
        duration_s=time.monotonic() - started,
    )
    log.info(
        "rules.backtest",
        topic=report.topic,
        read=report.read,
        skipped=report.skipped,
        moved=report.moved,
        unchanged=report.unchanged,
        complete=report.complete,
        baseline_version=report.baseline_version,
        duration_s=report.duration_s,
    )
    return report


def _compiled(ruleset: Ruleset | CompiledRuleset) -> CompiledRuleset:
    return ruleset if isinstance(ruleset, CompiledRuleset) else compile_ruleset(ruleset)


def _ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


async def _partitions(bootstrap: str, topic: str) -> list[int]:
    """The topic's partition numbers. A consumer without subscriptions has no metadata for
    a topic until it is assigned, so ask through an admin client."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    try:
        await admin.start()
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] != 0 or not described["partitions"]:
        raise InvalidBacktestRangeError(f"no topic {topic!r}", topic=topic)
    return [int(p["partition"]) for p in described["partitions"]]


async def _resolve(
    consumer: AIOKafkaConsumer, bootstrap: str, window: BacktestRange
) -> dict[TopicPartition, tuple[int, int]]:
    """``[start, end)`` offsets per partition, clamped to what the broker still holds."""
    numbers = await _partitions(bootstrap, window.topic)
    tps = [TopicPartition(window.topic, n) for n in sorted(numbers)]
    first = await consumer.beginning_offsets(tps)
    last = await consumer.end_offsets(tps)  # fixed now: later records are not read

    async def at_time(instant: datetime | None) -> dict[TopicPartition, int | None]:
        if instant is None:
            return {}
        found = await consumer.offsets_for_times({tp: _ms(instant) for tp in tps})
        return {tp: (hit.offset if hit is not None else None) for tp, hit in found.items()}

    starts, ends = await at_time(window.since), await at_time(window.until)
    ranges: dict[TopicPartition, tuple[int, int]] = {}
    for tp in tps:
        end = last[tp]
        if window.to_offset is not None:
            end = min(end, window.to_offset)
        elif (until := ends.get(tp)) is not None:
            end = min(end, until)
        if window.since is not None:
            # No record at or after ``since``: nothing to read in this partition.
            hit = starts.get(tp)
            start = last[tp] if hit is None else hit
        else:
            start = window.from_offset if window.from_offset is not None else first[tp]
        start = max(start, first[tp])
        ranges[tp] = (start, max(start, end))
    return ranges


async def _replay(
    consumer: AIOKafkaConsumer,
    window: BacktestRange,
    ranges: dict[TopicPartition, tuple[int, int]],
    tally: BacktestTally,
    on_progress: ProgressCallback | None,
    batch_size: int,
    idle_timeout_s: float,
) -> bool:
    """Read every range (or ``max_records``); True when every partition reached its end."""
    remaining = {tp: end for tp, (start, end) in ranges.items() if start < end}
    expected = min(window.max_records, sum(end - start for start, end in ranges.values()))
    if on_progress is not None:
        on_progress(0, expected)
    if not remaining:
        return True
    consumer.assign(list(remaining))
    for tp in remaining:
        consumer.seek(tp, ranges[tp][0])
    last_progress = time.monotonic()
    while remaining and tally.read < window.max_records:
        budget = window.max_records - tally.read
        batch = await consumer.getmany(
            *remaining, timeout_ms=500, max_records=min(budget, batch_size)
        )
        records = [
            ReplayRecord(tp.partition, r.offset, r.value)
            for tp, rows in batch.items()
            for r in rows
            if r.offset < remaining.get(tp, -1)
        ][:budget]
        tally.add_batch(records)
        moved = False
        for tp in list(remaining):
            # The position also passes transaction markers and compacted gaps, which never
            # arrive as records: it, not the last record seen, says a partition is done.
            if await consumer.position(tp) >= remaining[tp]:
                consumer.pause(tp)
                del remaining[tp]
                moved = True
        if records or moved:
            last_progress = time.monotonic()
            if on_progress is not None:
                on_progress(tally.read, expected)
        elif time.monotonic() - last_progress > idle_timeout_s:
            raise BacktestUnavailableError(
                f"no records arrived for {idle_timeout_s:.0f}s before the end of the range",
                partitions=sorted(tp.partition for tp in remaining),
            )
    return not remaining
