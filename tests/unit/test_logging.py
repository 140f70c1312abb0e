"""One logging chain: structlog and stdlib loggers both come out as redacted JSON lines."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from shared.logging import configure_logging, get_logger, redact_value

TOKEN = "ayt_" + "Q" * 44


@pytest.fixture
def json_logging() -> Iterator[None]:
    configure_logging("info", "json")
    yield
    configure_logging("debug", "json")  # what tests/conftest.py sets for the session


def _read(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    err = capsys.readouterr().err
    assert TOKEN not in err
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_stdlib_and_structlog_lines_are_json_and_redacted(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    get_logger("alertyard.test").info("nested", data={"a": [TOKEN, {"b": (TOKEN,)}]}, n=1)
    logging.getLogger("aiokafka.consumer.group_coordinator").warning("token %s leaked", TOKEN)
    logging.getLogger("aiokafka.conn").info("chatty connection detail")  # below WARNING
    logging.getLogger("some.library").info("Started server process")
    records = _read(capsys)
    assert [r["event"] for r in records] == [
        "nested",
        "token [redacted-token] leaked",
        "Started server process",
    ]
    assert records[0]["data"] == {"a": ["[redacted-token]", {"b": ["[redacted-token]"]}]}
    assert records[1]["logger"] == "aiokafka.consumer.group_coordinator"
    assert records[1]["level"] == "warning"
    assert all("timestamp" in r for r in records)


def test_exception_messages_and_tracebacks_are_redacted(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        raise ValueError(f"bad token {TOKEN}")
    except ValueError as exc:
        get_logger("alertyard.test").exception("failed", error=exc)
        logging.getLogger("redis.connection").exception("library failed")
    records = _read(capsys)
    assert records[0]["error"] == "ValueError: bad token [redacted-token]"
    for record in records:
        assert "Traceback" in str(record["exception"])
        assert "[redacted-token]" in str(record["exception"])


def test_redact_value_handles_any_shape() -> None:
    class Opaque:
        def __str__(self) -> str:
            return f"opaque {TOKEN}"

    assert redact_value({TOKEN: {1, 2}}) == {"[redacted-token]": [1, 2]}
    assert redact_value(Opaque()) == "opaque [redacted-token]"
    deep: object = TOKEN
    for _ in range(50):
        deep = [deep]
    assert TOKEN not in json.dumps(redact_value(deep))
