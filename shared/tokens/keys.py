"""Redis key layout of tokens and users (one place, so the service, validators, tools and
tests agree). The set of teams is :data:`shared.teams.TEAMS_KEY`. Every key is in the control
plane's Redis Cluster slot (:data:`shared.keyspace.CONTROL`): a change writes several of them
and its outbox event in one transaction."""

from __future__ import annotations

from typing import Final

from shared.keyspace import CONTROL

__all__ = [
    "BOOTSTRAPPED",
    "EXPIRY_INDEX",
    "TOKENS",
    "USERS",
    "text",
    "token_key",
    "token_last_used_key",
    "token_ref",
    "token_ref_key",
    "user_email_key",
    "user_key",
]

TOKENS: Final = f"{CONTROL}:tokens"
"""Set of every token id."""
EXPIRY_INDEX: Final = f"{CONTROL}:token_expiry"
"""Sorted set: token id -> expiry (Unix seconds) for tokens not yet swept."""
USERS: Final = f"{CONTROL}:users"
BOOTSTRAPPED: Final = f"{CONTROL}:bootstrapped"


def token_key(token_id: str) -> str:
    return f"{CONTROL}:token:{token_id}"


def token_last_used_key(token_id: str) -> str:
    return f"{token_key(token_id)}:last_used"


def token_ref_key(digest_hex: str) -> str:
    """Lookup from the HMAC of a secret to its token (``token_id|user_id``)."""
    return f"{CONTROL}:token_ref:{digest_hex}"


def token_ref(token_id: str, user_id: str | None) -> bytes:
    return f"{token_id}|{user_id or ''}".encode()


def user_key(user_id: str) -> str:
    return f"{CONTROL}:user:{user_id}"


def user_email_key(email: str) -> str:
    return f"{CONTROL}:user_email:{email}"


def text(value: bytes | str) -> str:
    """A Redis reply as text (the clients return bytes; redis-py types allow str too)."""
    return value.decode() if isinstance(value, bytes) else value
