"""The file formats: rules files and test-case files, in YAML or JSON.

Rules file::

    rules:
      - name: payments-critical
        owner_team: payments
        destinations: [payments]
        condition_groups:
          - conditions:
              - {field: service, operator: is_one_of, values: [checkout, billing]}

Cases file (``rules test``)::

    cases:
      - name: billing goes to payments
        alert: {source: prometheus, summary: x, service: billing}
        expect_teams: [payments]
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from services.rules.engine.errors import InvalidAlertError, InvalidDocumentError
from services.rules.engine.model import Ruleset, parse_ruleset
from shared.alert import Alert

__all__ = ["dump_rules_yaml", "load_cases", "load_document", "load_rules", "parse_alert"]

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


def load_document(text: str | bytes) -> Any:
    """Parse YAML (a superset of JSON); raises :class:`InvalidDocumentError`."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise InvalidDocumentError(f"document is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidDocumentError(f"not valid YAML or JSON: {exc}") from None


def load_rules(text: str | bytes) -> Ruleset:
    """A ruleset from a rules file's text; raises ``RulesetInvalidError`` naming the rule."""
    data = load_document(text)
    if not isinstance(data, dict) or "rules" not in data:
        raise InvalidDocumentError("a rules file is a mapping with a 'rules' list")
    return parse_ruleset(data)


def load_cases(data: Any) -> list[dict[str, Any]]:
    """Test cases from a parsed cases document (``{"cases": [...]}`` or a single case)."""
    if isinstance(data, dict) and "alert" in data:
        data = {"cases": [data]}
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise InvalidDocumentError("a cases file is a mapping with a 'cases' list")
    cases: list[dict[str, Any]] = []
    for number, case in enumerate(data["cases"]):
        if not isinstance(case, dict) or not isinstance(case.get("alert"), dict):
            raise InvalidDocumentError(f"case #{number} needs an 'alert' mapping")
        expected = case.get("expect_teams", [])
        if not isinstance(expected, list) or not all(isinstance(t, str) for t in expected):
            raise InvalidDocumentError(f"case #{number}: expect_teams must be a list of teams")
        parse_alert(case["alert"], where=f"case {case.get('name', number)!r}")
        cases.append(case)
    return cases


def parse_alert(data: Any, *, where: str = "alert") -> Alert:
    """An alert for explain/test; fills ``source``/``summary`` when absent, for convenience."""
    if not isinstance(data, dict):
        raise InvalidAlertError(f"{where}: an alert is a JSON object")
    try:
        return Alert.model_validate({"source": "explain", "summary": "-", **data})
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        raise InvalidAlertError(f"{where}: {location}: {first['msg']}") from None


def dump_rules_yaml(ruleset: Ruleset) -> str:
    """The ruleset as a rules file (ids kept, so re-applying updates rather than replaces)."""
    rules = []
    for rule in ruleset.rules:
        data = rule.dump()
        data.pop("position", None)
        rules.append(data)
    return yaml.safe_dump({"rules": rules}, sort_keys=False, allow_unicode=True)
