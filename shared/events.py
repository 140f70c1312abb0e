"""The audit event envelope (CloudEvents-like) carried on the audit topic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from shared.auth import Principal, TokenKind

__all__ = ["EVENT_TYPES", "Actor", "Event", "actor_of"]

EVENT_TYPES: Final = frozenset(
    {
        "token.created",
        "token.rotated",
        "token.revoked",
        "token.expired",
        "user.created",
        "user.deactivated",
        "user.role_changed",
        "team.created",
        "rule.created",
        "rule.updated",
        "rule.deleted",
        "ruleset.applied",
        "source.assigned",
    }
)
"""Known event types; the audit log accepts any ``<noun>.<verb>`` but these are documented."""


class Actor(BaseModel):
    """Who made a change and with which credential (the token id, never the secret)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_id: str | None = None
    """The acting user; None for a global or team token acting on its own."""
    token_id: str | None = None
    """The credential used; None for system actions such as expiry sweeps or bootstrap."""
    kind: str = "user"
    """``user``, ``token`` (a global/team token with no user) or ``system``."""


def actor_of(principal: Principal | None) -> Actor:
    """Who acted, for events: the user and token id, never the secret; None is the system."""
    if principal is None:
        return Actor(kind="system")
    kind = "user" if principal.kind is TokenKind.user else "token"
    return Actor(user_id=principal.user_id, token_id=principal.token_id, kind=kind)


class Event(BaseModel):
    """One lifecycle event. ``sequence`` is per ``source`` and gap-free: a gap means a loss."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=128)
    type: str = Field(pattern=r"^[a-z_]+\.[a-z_]+$", max_length=64)
    source: str = Field(min_length=1, max_length=64)
    """The emitting component, e.g. ``tokens`` or ``rules``."""
    sequence: int = Field(default=0, ge=0)
    """Assigned atomically with the change by the outbox; 0 until staged."""
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    actor: Actor
    subject: str = Field(min_length=1, max_length=256)
    """What changed, e.g. ``token/<id>`` or ``rule/<id>``."""
    data: dict[str, Any] = Field(default_factory=dict)
    """Change details (before/after for updates). Never holds a secret."""

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()
