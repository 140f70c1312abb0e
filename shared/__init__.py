"""alertyard's common package: contracts (alert, headers, events), settings, logging, errors and
helpers to reach Kafka and Redis. Every service imports from here; nothing here imports a service.
"""

from shared.alert import Alert, AlertStatus, Severity
from shared.auth import Permission, Principal, TokenKind, TokenValidator
from shared.errors import AlertyardError
from shared.events import Actor, Event
from shared.headers import RejectedHeaders, RoutedHeaders

__all__ = [
    "Actor",
    "Alert",
    "AlertStatus",
    "AlertyardError",
    "Event",
    "Permission",
    "Principal",
    "RejectedHeaders",
    "RoutedHeaders",
    "Severity",
    "TokenKind",
    "TokenValidator",
]
