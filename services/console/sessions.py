"""Console sessions: a random id in a cookie, the record in Redis, the token encrypted.

The cookie holds only the session id (256 random bits). The record in Redis holds the token's
id, the CSRF secret, the expiry and the token itself encrypted with a key only the console
holds (Fernet), so neither a Redis dump nor the cookie yields a usable credential.
One-time messages (a new token's secret) are kept encrypted in the record and popped on read.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography.fernet import Fernet, InvalidToken
from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

__all__ = ["SESSION_KEY_PREFIX", "Session", "SessionStore"]

SESSION_KEY_PREFIX = "alertyard:console:session:"


class _Record(BaseModel):
    """A session as stored in Redis (the token and the one-time secret are ciphertext)."""

    model_config = ConfigDict(frozen=True)

    token_id: str
    token_ciphertext: str
    csrf: str
    created_at: float
    expires_at: float
    once_ciphertext: str | None = None


class Session(BaseModel):
    """A live session as a request sees it."""

    model_config = ConfigDict(frozen=True)

    id: str
    token_id: str
    """The identity the session is bound to: the token it was opened with."""
    token: str
    """The user's token, decrypted for this request only (sent to the APIs, never rendered)."""
    csrf: str
    expires_at: datetime


class SessionStore:
    def __init__(
        self,
        redis: Redis,
        *,
        key: bytes,
        ttl_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._fernet = Fernet(key)
        self._ttl_s = ttl_s
        self._clock = clock

    async def open(self, *, token: str, token_id: str) -> Session:
        """A new session for ``token``; returns it with its id (for the cookie)."""
        now = self._clock()
        record = _Record(
            token_id=token_id,
            token_ciphertext=self._encrypt(token),
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + self._ttl_s,
        )
        session_id = secrets.token_urlsafe(32)
        await self._redis.set(_key(session_id), record.model_dump_json(), ex=self._ttl_s)
        return self._session(session_id, record)

    async def load(self, session_id: str) -> Session | None:
        """The session, or None when it is unknown, expired or unreadable."""
        record = await self._record(session_id)
        if record is None:
            return None
        try:
            return self._session(session_id, record)
        except InvalidToken:  # sealed with another key (a console restarted without a fixed one)
            await self.close(session_id)
            return None

    async def close(self, session_id: str) -> None:
        await self._redis.delete(_key(session_id))

    async def keep_once(self, session_id: str, text: str) -> None:
        """Keep ``text`` (a new secret) to be shown by the next :meth:`pop_once` only."""
        record = await self._record(session_id)
        if record is None:
            return
        updated = record.model_copy(update={"once_ciphertext": self._encrypt(text)})
        await self._save(session_id, updated)

    async def pop_once(self, session_id: str) -> str | None:
        record = await self._record(session_id)
        if record is None or record.once_ciphertext is None:
            return None
        await self._save(session_id, record.model_copy(update={"once_ciphertext": None}))
        try:
            return self._decrypt(record.once_ciphertext)
        except InvalidToken:
            return None

    async def _record(self, session_id: str) -> _Record | None:
        if not session_id or len(session_id) > 128:
            return None
        raw = await self._redis.get(_key(session_id))
        if raw is None:
            return None
        record = _Record.model_validate_json(raw)
        if record.expires_at <= self._clock():
            await self.close(session_id)
            return None
        return record

    async def _save(self, session_id: str, record: _Record) -> None:
        remaining = int(record.expires_at - self._clock())
        if remaining > 0:
            await self._redis.set(_key(session_id), record.model_dump_json(), ex=remaining)

    def _session(self, session_id: str, record: _Record) -> Session:
        return Session(
            id=session_id,
            token_id=record.token_id,
            token=self._decrypt(record.token_ciphertext),
            csrf=record.csrf,
            expires_at=datetime.fromtimestamp(record.expires_at, UTC),
        )

    def _encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def _decrypt(self, ciphertext: str) -> str:
        return self._fernet.decrypt(ciphertext.encode()).decode()


def _key(session_id: str) -> str:
    return SESSION_KEY_PREFIX + session_id
