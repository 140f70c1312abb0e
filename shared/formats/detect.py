"""Which format a JSON document is in: the ``alertyard-format`` header, else its shape."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

from shared.formats.alertmanager import looks_like_webhook
from shared.formats.pagerduty import looks_like_event

__all__ = ["FORMAT_HEADER", "Format", "detect"]

FORMAT_HEADER: Final = "alertyard-format"


class Format(StrEnum):
    native = "native"
    alertmanager = "alertmanager"
    pagerduty = "pagerduty"


def detect(doc: Any) -> Format:
    """The format ``doc`` is shaped like (native when nothing else fits)."""
    if looks_like_webhook(doc):
        return Format.alertmanager
    if looks_like_event(doc):
        return Format.pagerduty
    return Format.native
