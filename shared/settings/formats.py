"""Format conversion settings (``ALERTYARD_FORMAT_*``), shared by the ingest service and the
router (which converts webhook JSON published on the alerts topic), so both map alike."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.formats.alertmanager import AlertmanagerMapping

__all__ = ["FormatSettings"]


class FormatSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALERTYARD_FORMAT_", extra="ignore")

    alertmanager: AlertmanagerMapping = Field(default_factory=AlertmanagerMapping)
    """Webhook field mapping, as JSON: ``ALERTYARD_FORMAT_ALERTMANAGER='{"service_from":
    ["labels.app", "labels.job"]}'`` (see docs/ingest.md)."""
