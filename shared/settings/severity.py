"""Severity table settings (``ALERTYARD_SEVERITY_*``), shared by the router and the ingest
service so both map a source's severities the same way."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.alert import Severity
from shared.severity import SeverityTable

__all__ = ["SeveritySettings"]


class SeveritySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALERTYARD_SEVERITY_", extra="ignore")

    aliases: dict[str, Severity] = {}
    """Extra aliases (lower-cased), added to the default table; they win over its entries.
    Example: ``ALERTYARD_SEVERITY_ALIASES='{"sev0": "critical"}'``."""
    by_source: dict[str, dict[str, Severity]] = {}
    """Aliases for alerts of one ``source`` only (e.g. ``{"zabbix": {"high": "critical"}}``)."""
    by_token: dict[str, dict[str, Severity]] = {}
    """Aliases for one token id (ingest service: the caller's token is known before mapping)."""
    unmapped: Severity | None = None
    """What an unknown severity becomes; unset: the alert is refused (``severity_unmapped``)."""

    def table(self) -> SeverityTable:
        return SeverityTable(
            self.aliases, by_source=self.by_source, by_token=self.by_token, unmapped=self.unmapped
        )
