"""What a team is called and where the set of teams lives (owned by the token service, read
by the rules control plane to refuse routes to unknown teams)."""

from __future__ import annotations

import re
from typing import Final

from shared.keyspace import CONTROL

__all__ = ["TEAMS_KEY", "TEAM_NAME_RE"]

TEAM_NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
"""Team names double as Kafka topic suffixes, hence the conservative alphabet."""

TEAMS_KEY: Final = f"{CONTROL}:teams"
"""Redis set of team names. The rules store checks unknown teams with SISMEMBER on it (and
watches it, so it shares the control plane's slot: :mod:`shared.keyspace`)."""
