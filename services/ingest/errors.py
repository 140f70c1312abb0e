"""Errors the ingest endpoints answer with (on top of ``shared.errors``)."""

from __future__ import annotations

import math
from typing import Any

from shared.errors import AlertyardError
from shared.formats import Problem

__all__ = ["InvalidPayloadError", "PayloadTooLargeError", "retry_headers"]


class InvalidPayloadError(AlertyardError):
    """The body, or some of its alerts, cannot become alerts; nothing was produced."""

    code = "invalid_payload"
    http_status = 400

    def __init__(self, detail: str, problems: list[Problem]) -> None:
        super().__init__(detail)
        self.problems = problems

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["errors"] = [p.to_dict() for p in self.problems]
        return body


class PayloadTooLargeError(AlertyardError):
    code = "payload_too_large"
    http_status = 413


def retry_headers(exc: AlertyardError, *, default_s: int = 5) -> dict[str, str]:
    """``Retry-After`` for an error a retry can cure (429, 503), else nothing."""
    if not exc.retriable:
        return {}
    wait = exc.context.get("retry_after_s", default_s)
    return {"Retry-After": str(max(1, math.ceil(float(wait))))}
