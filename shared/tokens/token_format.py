"""The token wire format: ``<prefix><secret><checksum>``, e.g. ``ayg_`` + 43 + 9 base62 chars.

* prefix ``ayg_`` / ``ayt_`` / ``ayu_`` names the kind, so secret scanners (and our own log
  redaction, :data:`shared.auth.TOKEN_RE`) recognise a leaked token;
* secret: 256 bits from :mod:`secrets`, base62, fixed width;
* checksum: the first 48 bits of an HMAC over prefix + secret under a key derived from the
  server secret. A mistyped, truncated, forged or re-prefixed token fails it and is rejected
  without touching Redis.

At rest only ``HMAC-SHA256(lookup key, token)`` is stored; lookups go by that digest.
"""

from __future__ import annotations

import hmac
import secrets
import string
from typing import Final

from shared.auth import TokenKind
from shared.tokens.errors import TokenMalformedError

__all__ = ["PREFIXES", "TOKEN_LENGTH", "TokenCodec", "keyed_sha256"]

PREFIXES: Final = {TokenKind.global_: "ayg_", TokenKind.team: "ayt_", TokenKind.user: "ayu_"}
_KIND_BY_PREFIX: Final = {prefix: kind for kind, prefix in PREFIXES.items()}
_ALPHABET: Final = string.digits + string.ascii_uppercase + string.ascii_lowercase
_SECRET_BYTES: Final = 32
_SECRET_CHARS: Final = 43  # 62**43 > 2**256
_CHECKSUM_BYTES: Final = 6
_CHECKSUM_CHARS: Final = 9  # 62**9 > 2**48
_PREFIX_CHARS: Final = 4
TOKEN_LENGTH: Final = _PREFIX_CHARS + _SECRET_CHARS + _CHECKSUM_CHARS


def keyed_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 of ``data`` under ``key``.

    Not ``hmac.digest``: its one-shot OpenSSL call releases the GIL, so in a process whose other
    threads hold the GIL (the router's librdkafka callbacks) each call waits to get it back:
    measured ~500 us a call beside one busy thread against ~1.5 us for this (an ``HMAC`` object
    releases the GIL only for messages of 2 KiB and more).
    """
    return hmac.new(key, data, "sha256").digest()


def _base62(data: bytes, width: int) -> str:
    number = int.from_bytes(data, "big")
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


class TokenCodec:
    """Generates, checks and digests tokens with keys derived from the server secret."""

    lookup_key: bytes
    """Key of the at-rest HMAC (the validator's hot path uses it directly)."""

    def __init__(self, server_secret: bytes) -> None:
        # Separate keys per purpose, so a checksum never reveals anything about a lookup digest.
        self.lookup_key = keyed_sha256(server_secret, b"alertyard/token-lookup/v1")
        self._checksum_key = keyed_sha256(server_secret, b"alertyard/token-checksum/v1")

    def generate(self, kind: TokenKind) -> str:
        """A new raw token of ``kind``: shown once to its owner, never stored."""
        head = PREFIXES[kind] + _base62(secrets.token_bytes(_SECRET_BYTES), _SECRET_CHARS)
        return head + self._checksum(head)

    def parse(self, raw: str) -> TokenKind:
        """The kind of a well-formed token; raises :class:`TokenMalformedError` otherwise."""
        if len(raw) != TOKEN_LENGTH:
            raise TokenMalformedError("token has the wrong length")
        kind = _KIND_BY_PREFIX.get(raw[:_PREFIX_CHARS])
        if kind is None:
            raise TokenMalformedError("token has an unknown prefix")
        body = raw[_PREFIX_CHARS:]
        if not (body.isascii() and body.isalnum()):
            raise TokenMalformedError("token contains characters outside [A-Za-z0-9]")
        head, checksum = raw[:-_CHECKSUM_CHARS], raw[-_CHECKSUM_CHARS:]
        if not hmac.compare_digest(self._checksum(head), checksum):
            raise TokenMalformedError("token checksum does not match")
        return kind

    def digest(self, raw: str) -> bytes:
        """The keyed hash stored at rest and used as the lookup and cache key."""
        return keyed_sha256(self.lookup_key, raw.encode())

    def _checksum(self, head: str) -> str:
        mac = keyed_sha256(self._checksum_key, head.encode())
        return _base62(mac[:_CHECKSUM_BYTES], _CHECKSUM_CHARS)
