"""The alert contract: defaults, limits and parsing."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from shared.alert import MAX_NESTING_DEPTH, Alert, AlertStatus, nesting_depth


def test_generated_id_and_dedup_key_default() -> None:
    alert = Alert(source="ci", summary="build broken")
    assert len(alert.id) == 32
    assert alert.dedup_key == alert.id
    assert alert.kafka_key() == alert.id.encode()
    assert alert.status is AlertStatus.firing


def test_round_trip_bytes() -> None:
    alert = Alert(
        source="prom", summary="cpu", labels={"env": "prod"}, payload={"a": [1, {"b": 2}]}
    )
    assert Alert.from_bytes(alert.to_bytes()) == alert


def test_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Alert.model_validate({"source": "x", "summary": "y", "colour": "red"})


def test_deep_payload_is_refused() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(MAX_NESTING_DEPTH + 1):
        node["n"] = {}
        node = node["n"]  # type: ignore[assignment]
    with pytest.raises(ValidationError, match="nesting depth"):
        Alert(source="x", summary="y", payload=deep)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_non_json_numbers_are_refused_at_any_depth(number: str) -> None:
    for where in (f'{{"v": {number}}}', f'{{"v": {{"w": [1.5, {number}]}}}}'):
        body = f'{{"source": "x", "summary": "y", "payload": {where}}}'
        with pytest.raises(ValidationError, match="not JSON numbers"):
            Alert.model_validate_json(body)
        with pytest.raises(ValidationError, match="not JSON numbers"):
            Alert.from_bytes(body.encode())


def test_finite_floats_are_kept() -> None:
    alert = Alert.model_validate_json('{"source": "x", "summary": "y", "payload": {"v": 1.5}}')
    assert alert.payload == {"v": 1.5}


def test_label_values_must_be_strings() -> None:
    with pytest.raises(ValidationError):
        Alert.model_validate({"source": "x", "summary": "y", "labels": {"n": 3}})


def test_nesting_depth() -> None:
    assert nesting_depth(1) == 0
    assert nesting_depth({}) == 1
    assert nesting_depth({"a": [1, {"b": 1}]}) == 3


def test_bad_utf8_raises_value_error() -> None:
    with pytest.raises(ValueError, match="utf-8"):
        Alert.from_bytes(b'{"source": "\xff"}')


def test_json_must_be_an_object() -> None:
    with pytest.raises(ValidationError):
        Alert.from_bytes(json.dumps([1, 2]).encode())
