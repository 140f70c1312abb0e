"""One settings class per service, built by a factory at start-up (never at import time).

Connection settings are shared (``ALERTYARD_KAFKA_BOOTSTRAP_SERVERS``, ``ALERTYARD_REDIS_URL``,
``ALERTYARD_TOPIC_*``); each service's own knobs carry its prefix (``ALERTYARD_ROUTER_*``,
``ALERTYARD_TOKENS_*``, ``ALERTYARD_AUDIT_*``, ``ALERTYARD_INGEST_*``; the severity table,
read by the router and the ingest service, is ``ALERTYARD_SEVERITY_*``, their format
mappings ``ALERTYARD_FORMAT_*``).
"""

from shared.settings._common import CommonSettings, TopicSettings
from shared.settings.audit import AuditSettings
from shared.settings.console import ConsoleSettings
from shared.settings.formats import FormatSettings
from shared.settings.ingest import IngestSettings
from shared.settings.router import RouterSettings
from shared.settings.severity import SeveritySettings
from shared.settings.tokens import TokensSettings

__all__ = [
    "AuditSettings",
    "CommonSettings",
    "ConsoleSettings",
    "FormatSettings",
    "IngestSettings",
    "RouterSettings",
    "SeveritySettings",
    "TokensSettings",
    "TopicSettings",
]
