"""Errors of the rules engine and store, each with a stable ``code``."""

from __future__ import annotations

from typing import Any

from shared.errors import ConflictError, NotFoundError, ValidationFailedError

__all__ = [
    "InvalidAlertError",
    "InvalidDocumentError",
    "Problem",
    "RuleNotFoundError",
    "RulesetInvalidError",
    "UnknownTeamError",
    "VersionConflictError",
]

Problem = dict[str, Any]
"""One validation problem: ``{"rule", "condition", "reason"}`` (``condition`` may be None)."""


class RulesetInvalidError(ValidationFailedError):
    """A rule or ruleset was refused; ``problems`` names the rule, condition and reason."""

    code = "invalid_rule"

    def __init__(self, problems: list[Problem]) -> None:
        first = problems[0]
        where = f"rule {first['rule']!r}"
        if first.get("condition"):
            where += f", condition {first['condition']}"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{where}: {first['reason']}{more}", problems=problems)
        self.problems = problems


class UnknownTeamError(RulesetInvalidError):
    """A rule names an owner or destination team that does not exist."""

    code = "unknown_team"


class VersionConflictError(ConflictError):
    """The ruleset moved on since the caller read it (optimistic concurrency)."""

    code = "version_conflict"


class RuleNotFoundError(NotFoundError):
    code = "rule_not_found"


class InvalidDocumentError(ValidationFailedError):
    """A rules or cases document is not valid YAML/JSON or has the wrong shape."""

    code = "invalid_document"


class InvalidAlertError(ValidationFailedError):
    """An alert given to explain/test does not follow the alert contract."""

    code = "invalid_alert"
