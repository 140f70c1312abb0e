"""The signing key comes from settings (PEM or hex seed) or is generated once into the log dir."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.errors import SigningKeyError
from services.audit.signing import (
    PRIVATE_KEY_FILE,
    PUBLIC_KEY_FILE,
    key_id,
    load_or_create_signing_key,
    load_public_key,
    parse_private_key,
)


def test_generated_once_with_the_public_key_beside_it(tmp_path: Path) -> None:
    first = load_or_create_signing_key(tmp_path, None)
    again = load_or_create_signing_key(tmp_path, None)
    assert key_id(first.public_key()) == key_id(again.public_key())
    assert stat.S_IMODE((tmp_path / PRIVATE_KEY_FILE).stat().st_mode) == 0o600
    public = load_public_key(tmp_path / PUBLIC_KEY_FILE)
    assert key_id(public) == key_id(first.public_key())


def test_configured_key_as_hex_seed_or_pem(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    ).hex()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    expected = key_id(key.public_key())
    assert key_id(parse_private_key(seed).public_key()) == expected
    assert key_id(load_or_create_signing_key(tmp_path, pem).public_key()) == expected
    assert not (tmp_path / PRIVATE_KEY_FILE).exists()  # a configured key is never written out
    assert key_id(load_public_key(tmp_path / PUBLIC_KEY_FILE)) == expected


def test_bad_key_material_is_not_echoed() -> None:
    with pytest.raises(SigningKeyError) as caught:
        parse_private_key("not-a-key-but-secret-looking-zzz")
    assert "secret-looking" not in str(caught.value)
