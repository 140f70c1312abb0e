"""Where alertyard's keys live in a Redis Cluster: the hash tags every key name is built on.

Redis Cluster runs a script or a ``MULTI`` only when every key it touches is in one slot, and
a slot is chosen by a key's hash tag (the text between the first ``{`` and ``}``). Two groups:

- **The control plane** (tokens, users, teams, rules, the outbox streams with their counters and
  leases) shares one tag, :data:`CONTROL`: a token or team change writes its records and its
  outbox event in one transaction, and a rules change watches the set of teams while staging
  its own event, so all of them must be in one slot. It is small (records, not traffic).
- **Decisions** (one record per routed alert, the bulk of the data) are spread over
  :data:`DECISION_SHARDS` tags by alert id (services/router/decisions.py): one script call per
  shard writes a shard's records and its time indexes.

The modules that name keys (shared/tokens/keys.py, shared/teams.py, shared/outbox.py, the rules
store, the decision store) build them from here; :mod:`shared.keyspace_migration` renames the
keys of an existing Redis written before the tags.
"""

from __future__ import annotations

import zlib
from typing import Final

__all__ = ["CONTROL", "DECISION_SHARDS", "decision_shard", "decision_tag"]

CONTROL: Final = "alertyard:{control}"
"""Prefix of every control-plane key (one Redis Cluster slot)."""

DECISION_SHARDS: Final = 16
"""Slots the decisions are spread over. Changing it moves every decision to another key: the
lookups of decisions written before would miss until they expired."""


def decision_shard(alert_id: str) -> int:
    """The shard of an alert's decision (stable across processes and versions: CRC-32)."""
    return zlib.crc32(alert_id.encode()) % DECISION_SHARDS


def decision_tag(shard: int) -> str:
    """The prefix of the decision keys of one shard (one Redis Cluster slot)."""
    return f"alertyard:{{decisions.{shard}}}"
