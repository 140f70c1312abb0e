"""Kafka header names and the routed-alert header contract.

Headers carry the routing decision next to the untouched alert body, so team consumers can
filter and dedupe without parsing the payload. The producer's token id is carried, never the
token itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from pydantic import BaseModel, ConfigDict

__all__ = [
    "AUTHORIZATION",
    "KafkaHeaders",
    "RejectedHeaders",
    "RoutedHeaders",
    "bearer_token",
    "header_value",
]

KafkaHeaders = Sequence[tuple[str, bytes]]

AUTHORIZATION: Final = "authorization"
PREFIX: Final = "alertyard-"


def header_value(headers: Iterable[tuple[str, bytes | None]], name: str) -> bytes | None:
    """First value of header ``name`` (case-insensitive), or None."""
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


def bearer_token(headers: Iterable[tuple[str, bytes | None]]) -> str | None:
    """The token in an ``authorization: Bearer <token>`` header.

    Returns None when the header is absent; raises ``ValueError`` (with a message that never
    echoes the header value) when it is present but malformed.
    """
    raw = header_value(headers, AUTHORIZATION)
    if raw is None:
        return None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("authorization header is not ASCII") from None
    scheme, _, token = text.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ValueError("authorization header must be 'Bearer <token>'")
    return token.strip()


class RoutedHeaders(BaseModel):
    """Headers on every message the router publishes to a team or the unrouted topic."""

    model_config = ConfigDict(frozen=True)

    alert_id: str
    team: str
    """Destination team; empty on the unrouted topic."""
    rule_ids: tuple[str, ...]
    ruleset_version: int
    token_id: str
    """Id of the producer's token (never the secret)."""
    source_topic: str
    source_partition: int
    source_offset: int

    def to_kafka(self) -> list[tuple[str, bytes]]:
        return [
            (PREFIX + "alert-id", self.alert_id.encode()),
            (PREFIX + "team", self.team.encode()),
            (PREFIX + "rule-ids", ",".join(self.rule_ids).encode()),
            (PREFIX + "ruleset-version", str(self.ruleset_version).encode()),
            (PREFIX + "token-id", self.token_id.encode()),
            (
                PREFIX + "source",
                f"{self.source_topic}/{self.source_partition}/{self.source_offset}".encode(),
            ),
        ]

    @classmethod
    def from_kafka(cls, headers: Iterable[tuple[str, bytes | None]]) -> RoutedHeaders:
        got = {k: (v or b"").decode() for k, v in headers if k.startswith(PREFIX)}
        topic, partition, offset = got[PREFIX + "source"].rsplit("/", 2)
        rule_ids = got.get(PREFIX + "rule-ids", "")
        return cls(
            alert_id=got[PREFIX + "alert-id"],
            team=got.get(PREFIX + "team", ""),
            rule_ids=tuple(r for r in rule_ids.split(",") if r),
            ruleset_version=int(got[PREFIX + "ruleset-version"]),
            token_id=got.get(PREFIX + "token-id", ""),
            source_topic=topic,
            source_partition=int(partition),
            source_offset=int(offset),
        )


class RejectedHeaders(BaseModel):
    """Headers on a message in the rejected topic; the value is the original bytes, untouched."""

    model_config = ConfigDict(frozen=True)

    reason: str
    """Stable, machine-readable code, e.g. ``invalid_json`` or ``token_revoked``."""
    detail: str
    """Human explanation; never contains the token."""
    source_topic: str
    source_partition: int
    source_offset: int

    def to_kafka(self) -> list[tuple[str, bytes]]:
        return [
            (PREFIX + "reject-reason", self.reason.encode()),
            (PREFIX + "reject-detail", self.detail.encode()),
            (
                PREFIX + "source",
                f"{self.source_topic}/{self.source_partition}/{self.source_offset}".encode(),
            ),
        ]

    @classmethod
    def from_kafka(cls, headers: Iterable[tuple[str, bytes | None]]) -> RejectedHeaders:
        got = {k: (v or b"").decode() for k, v in headers if k.startswith(PREFIX)}
        topic, partition, offset = got[PREFIX + "source"].rsplit("/", 2)
        return cls(
            reason=got[PREFIX + "reject-reason"],
            detail=got.get(PREFIX + "reject-detail", ""),
            source_topic=topic,
            source_partition=int(partition),
            source_offset=int(offset),
        )
