"""Token format and checksum (no I/O)."""

from __future__ import annotations

import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.auth import TOKEN_RE, TokenKind, redact_tokens
from shared.tokens.errors import TokenMalformedError
from shared.tokens.token_format import TOKEN_LENGTH, TokenCodec, keyed_sha256

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


def test_the_keyed_digest_is_hmac_sha256_so_stored_lookup_digests_still_match() -> None:
    key, data = b"k" * 32, b"ayg_" + b"x" * 52
    assert keyed_sha256(key, data) == hmac.digest(key, data, "sha256")
    codec = TokenCodec(b"server-secret")
    raw = codec.generate(TokenKind.global_)
    expected_key = hmac.digest(b"server-secret", b"alertyard/token-lookup/v1", "sha256")
    assert codec.digest(raw) == hmac.digest(expected_key, raw.encode(), "sha256")
