"""Ed25519 keys for checkpoint signatures: load from settings, or generate on first start.

The private key never leaves the writer; an auditor needs only the public key (PEM). A key is
named by its ``key_id``: the first 16 hex digits of SHA-256 over the raw 32-byte public key.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.audit.errors import SigningKeyError

__all__ = [
    "PRIVATE_KEY_FILE",
    "PUBLIC_KEY_FILE",
    "key_id",
    "load_or_create_signing_key",
    "load_public_key",
    "parse_private_key",
    "public_pem",
    "signature_valid",
]

PRIVATE_KEY_FILE: Final = "signing-key.pem"
PUBLIC_KEY_FILE: Final = "signing-key.pub.pem"


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def parse_private_key(text: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM (PKCS#8, unencrypted) or the hex of its 32-byte seed."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(text))
    except ValueError as exc:
        # The message names the problem, never the key material.
        raise SigningKeyError("signing key is neither an Ed25519 PEM nor 64 hex digits") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError("signing key must be an Ed25519 key")
    return key


def load_or_create_signing_key(log_dir: Path, configured: str | None) -> Ed25519PrivateKey:
    """The configured key, else the one in ``log_dir``, else a new one saved there.

    The public key is (re)written beside it as ``signing-key.pub.pem`` either way.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    private_path = log_dir / PRIVATE_KEY_FILE
    if configured:
        key = parse_private_key(configured)
    elif private_path.exists():
        key = parse_private_key(private_path.read_text())
    else:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
    public_path = log_dir / PUBLIC_KEY_FILE
    pem_public = public_pem(key.public_key())
    if not public_path.exists() or public_path.read_bytes() != pem_public:
        public_path.write_bytes(pem_public)
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SigningKeyError(f"cannot load public key {path}: {exc.__class__.__name__}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path} is not an Ed25519 public key")
    return key


def signature_valid(public_key: Ed25519PublicKey, signature_hex: str, message: bytes) -> bool:
    try:
        public_key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True
