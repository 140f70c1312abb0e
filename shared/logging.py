"""Logging set up once per process: one chain for every line, JSON off a terminal.

structlog's loggers and the standard library's (aiokafka, uvicorn, redis-py, FastStream, ...)
end in the same handler, whose :class:`structlog.stdlib.ProcessorFormatter` runs one chain:
timestamp, level, logger name, exception rendering, :func:`redact`, then the JSON (or console)
renderer. So no library line escapes as plain text, and :func:`redact` sees every value: nested
mappings and sequences, exception messages and rendered tracebacks included.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Final, TextIO

import structlog

from shared.auth import redact_tokens

__all__ = ["configure_logging", "get_logger", "redact", "redact_value"]

QUIET_LIBRARIES: Final = ("aiokafka", "kafka", "faststream", "httpx", "httpcore")
"""Libraries that narrate every connection at INFO: kept at WARNING and above."""
_PLAIN: Final = (int, float, bool, type(None))


def redact_value(value: Any, depth: int = 0) -> Any:
    """``value`` with every token-shaped string replaced, however deeply nested.

    Values JSON cannot render (exceptions, objects) become their redacted ``str``: the
    renderer would otherwise call ``repr`` on them after redaction ran.
    """
    if isinstance(value, str):
        return redact_tokens(value)
    if isinstance(value, _PLAIN):
        return value
    if depth > 20:
        return "[too deep]"
    if isinstance(value, Mapping):
        return {redact_value(k, depth + 1): redact_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact_value(item, depth + 1) for item in value]
    if isinstance(value, BaseException):
        return redact_tokens(f"{type(value).__name__}: {value}")
    return redact_tokens(str(value))


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The processor: every value of the event, after exceptions were rendered to text."""
    for key, value in list(event_dict.items()):
        event_dict[key] = redact_value(value)
    return event_dict


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]  # generic in typeshed only
    """Writes to whatever ``sys.stderr`` is at write time, not at configure time: a test runner
    or CLI harness that swaps and then closes its stream must not leave logging writing to a
    closed file."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog and the stdlib root logger; safe to call again (tests, CLI)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    before_render: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=before_render,
        processors=[
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )
    structlog.configure(
        processors=[*before_render, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    handler = _CurrentStderrHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    logging.captureWarnings(True)  # warnings.warn lines take the same path


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
