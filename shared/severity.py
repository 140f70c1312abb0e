"""Severity normalisation: the values real rule sets use, mapped onto the canonical four.

Prometheus rule sets say ``page``, ``high``, ``low`` or ``none`` (kube-prometheus's Watchdog);
PagerDuty clients say ``critical`` ... ``info``. One table maps them all, case-insensitively,
for the ingest service and for native alerts on the topic alike. The original value is kept
in ``labels.severity_original``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shared.alert import Severity

__all__ = [
    "DEFAULT_ALIASES",
    "DEFAULT_TABLE",
    "ORIGINAL_LABEL",
    "SEVERITY_UNMAPPED",
    "SeverityTable",
    "UnmappedSeverityError",
]

SEVERITY_UNMAPPED: Final = "severity_unmapped"
"""Reason code of an alert whose severity is in no table (and no default is configured)."""
ORIGINAL_LABEL: Final = "severity_original"
"""Label that keeps the value the source sent when it was not already canonical."""

DEFAULT_ALIASES: Final[Mapping[str, Severity]] = {
    **dict.fromkeys(("page", "p1", "crit", "fatal", "emergency"), Severity.critical),
    **dict.fromkeys(("p0", "sev0", "sev1"), Severity.critical),
    **dict.fromkeys(("high", "major", "p2", "err", "sev2"), Severity.error),
    **dict.fromkeys(("medium", "warn", "minor", "p3", "sev3"), Severity.warning),
    **dict.fromkeys(("low", "p4", "p5", "informational", "none"), Severity.info),
    **dict.fromkeys(("debug", "notice", "sev4"), Severity.info),
    **{member.value: member for member in Severity},
}
"""Lower-case alias -> canonical severity. Settings add to it (and may override entries)."""


class UnmappedSeverityError(ValueError):
    """The severity is in no table and unknown values are refused."""

    code = SEVERITY_UNMAPPED


def _lowered(aliases: Mapping[str, Severity | str]) -> dict[str, Severity]:
    return {key.strip().lower(): Severity(value) for key, value in aliases.items()}


class SeverityTable:
    """Maps a source's severity to a canonical one: per-token, then per-source, then global
    aliases; an unknown value becomes ``unmapped`` or, when that is None, is refused."""

    __slots__ = ("_aliases", "_by_source", "_by_token", "unmapped")

    def __init__(
        self,
        aliases: Mapping[str, Severity | str] | None = None,
        *,
        by_source: Mapping[str, Mapping[str, Severity | str]] | None = None,
        by_token: Mapping[str, Mapping[str, Severity | str]] | None = None,
        unmapped: Severity | None = None,
    ) -> None:
        self._aliases = {**DEFAULT_ALIASES, **_lowered(aliases or {})}
        self._by_source = {k: _lowered(v) for k, v in (by_source or {}).items()}
        self._by_token = {k: _lowered(v) for k, v in (by_token or {}).items()}
        self.unmapped = unmapped

    def resolve(self, raw: str, *, source: str = "", token_id: str = "") -> Severity:
        """The canonical severity for ``raw``; raises :class:`UnmappedSeverityError`."""
        key = raw.strip().lower()
        for table in (self._by_token.get(token_id), self._by_source.get(source)):
            if table and key in table:
                return table[key]
        found = self._aliases.get(key)
        if found is not None:
            return found
        if self.unmapped is not None:
            return self.unmapped
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise UnmappedSeverityError(f"severity {shown!r} is not in the severity table")

    def normalise_fields(self, fields: dict[str, Any], *, token_id: str = "") -> None:
        """Rewrite ``fields['severity']`` (an alert's fields before validation) in place.

        A non-canonical value is replaced and kept in ``labels.severity_original``; a value that
        is not a string is left for schema validation to refuse.
        """
        raw = fields.get("severity")
        if not isinstance(raw, str) or raw in _CANONICAL:
            return
        source = fields.get("source")
        severity = self.resolve(
            raw, source=source if isinstance(source, str) else "", token_id=token_id
        )
        fields["severity"] = severity.value
        labels = fields.get("labels")
        if labels is None:
            fields["labels"] = {ORIGINAL_LABEL: raw}
        elif isinstance(labels, dict):
            fields["labels"] = {**labels, ORIGINAL_LABEL: raw}


_CANONICAL: Final = frozenset(member.value for member in Severity)

DEFAULT_TABLE: Final = SeverityTable()
"""The default aliases; unknown values are refused."""
