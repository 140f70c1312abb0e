"""Signed checkpoints: ``(seq, head hash)`` signed with Ed25519, one JSON line each.

A checkpoint line is the canonical JSON of ``{"hash", "key_id", "seq", "time", "type"}`` with
``"signature"`` (hex, 64 bytes) appended as the last member. The signature is over the line
without that member, i.e. over the canonical JSON of the other five.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.audit.records import canonical_json
from services.audit.signing import key_id, signature_valid

__all__ = [
    "CHECKPOINT_FILE",
    "CHECKPOINT_TYPE",
    "Checkpoint",
    "encode_checkpoint",
    "read_checkpoints",
]

CHECKPOINT_FILE: Final = "checkpoints.jsonl"
CHECKPOINT_TYPE: Final = "alertyard.audit.checkpoint/v1"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One signed statement "the record with this seq has this hash"."""

    seq: int
    hash: str
    time: str
    key_id: str
    signature: str
    signed_bytes: bytes
    """The exact bytes the signature covers."""

    def signature_valid(self, public_key: Ed25519PublicKey) -> bool:
        return signature_valid(public_key, self.signature, self.signed_bytes)


def encode_checkpoint(key: Ed25519PrivateKey, *, seq: int, head_hash: str) -> bytes:
    """A signed checkpoint line (with its newline) for the record ``seq`` whose hash is given."""
    body = canonical_json(
        {
            "hash": head_hash,
            "key_id": key_id(key.public_key()),
            "seq": seq,
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "type": CHECKPOINT_TYPE,
        }
    )
    signature = key.sign(body).hex()
    return body[:-1] + b',"signature":"' + signature.encode() + b'"}\n'


def read_checkpoints(path: Path) -> tuple[list[Checkpoint], list[int]]:
    """The checkpoints in ``path`` and the 1-based line numbers that are not checkpoints.

    A torn last line (a crash while writing it) counts as not a checkpoint.
    """
    if not path.exists():
        return [], []
    checkpoints: list[Checkpoint] = []
    bad_lines: list[int] = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            doc = json.loads(line)
            signature = doc.pop("signature")
            checkpoints.append(
                Checkpoint(
                    seq=int(doc["seq"]),
                    hash=str(doc["hash"]),
                    time=str(doc["time"]),
                    key_id=str(doc["key_id"]),
                    signature=str(signature),
                    signed_bytes=canonical_json(doc),
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            bad_lines.append(number)
    return checkpoints, bad_lines
