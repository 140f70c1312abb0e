"""Token format, checksum and the failed-auth limiter (no I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.auth import TOKEN_RE, TokenKind, redact_tokens
from shared.http_auth import FailedAuthLimiter
from shared.tokens.errors import TokenMalformedError
from shared.tokens.token_format import TOKEN_LENGTH, TokenCodec

CODEC = TokenCodec(b"unit-test-secret")


@pytest.mark.parametrize("kind", list(TokenKind))
def test_generated_tokens_parse_and_are_recognisable(kind: TokenKind) -> None:
    raw = CODEC.generate(kind)
    assert len(raw) == TOKEN_LENGTH
    assert CODEC.parse(raw) is kind
    assert TOKEN_RE.fullmatch(raw)
    assert redact_tokens(f"leaked {raw} here") == "leaked [redacted-token] here"
    assert CODEC.generate(kind) != raw
    assert len(CODEC.digest(raw)) == 32


@given(st.text(max_size=80))
def test_random_text_is_never_accepted(text: str) -> None:
    with pytest.raises(TokenMalformedError):
        CODEC.parse(text)


def test_every_single_character_change_is_caught() -> None:
    raw = CODEC.generate(TokenKind.global_)
    for i in range(4, len(raw)):
        swapped = "a" if raw[i] != "a" else "b"
        with pytest.raises(TokenMalformedError):
            CODEC.parse(raw[:i] + swapped + raw[i + 1 :])


def test_limiter_blocks_after_limit_until_window_ends() -> None:
    now = [0.0]
    limiter = FailedAuthLimiter(limit=2, window_s=10, clock=lambda: now[0])
    limiter.record_failure("a")
    assert limiter.retry_after_s("a") is None
    limiter.record_failure("a")
    assert limiter.retry_after_s("a") == 10
    assert limiter.retry_after_s("b") is None
    now[0] = 10.5
    assert limiter.retry_after_s("a") is None
