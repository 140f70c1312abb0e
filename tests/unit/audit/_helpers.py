"""Building small logs for the audit unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.log import AuditLog
from services.audit.signing import load_or_create_signing_key
from shared.events import Actor, Event

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(n: int, *, source: str = "tokens", sequence: int | None = None, **kw: object) -> Event:
    values: dict[str, object] = {
        "id": f"evt-{source}-{n}",
        "type": "token.created",
        "source": source,
        "sequence": n if sequence is None else sequence,
        "time": T0 + timedelta(seconds=n),
        "actor": Actor(user_id=f"user-{n % 3}", token_id=f"tok-{n % 2}"),
        "subject": f"token/t{n}",
        "data": {"name": f"token {n}", "note": "héllo"},
    }
    values.update(kw)
    return Event.model_validate(values)


def open_log(directory: Path, **kw: object) -> tuple[AuditLog, Ed25519PrivateKey]:
    key = load_or_create_signing_key(directory, None)
    options: dict[str, object] = {"segment_max_bytes": 4096, "checkpoint_every_records": 10}
    options.update(kw)
    return AuditLog.open(directory, signing_key=key, **options), key  # type: ignore[arg-type]  # test options


def write_log(directory: Path, count: int, **kw: object) -> None:
    audit_log, _ = open_log(directory, **kw)
    try:
        for start in range(1, count + 1, 7):
            audit_log.append([event(n) for n in range(start, min(start + 7, count + 1))])
    finally:
        audit_log.close()
