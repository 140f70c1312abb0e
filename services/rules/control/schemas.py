"""Response bodies of the rules API (``/v1/rules``): what OpenAPI documents and the CLI reads.

The engine returns plain data (it has no HTTP concerns); these models give that data a
documented, validated shape at the HTTP edge. Rules themselves are
:class:`services.rules.engine.model.Rule` (``continue`` spelled as in YAML).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.rules.engine.model import TEAM_RE, Rule

__all__ = [
    "CaseReport",
    "CaseResult",
    "ChangeReport",
    "ConditionResult",
    "Deleted",
    "ExplainRequest",
    "ExplainedSource",
    "Explanation",
    "GroupResult",
    "LintFinding",
    "LintReport",
    "LintRequest",
    "MatchedRule",
    "OutOfScopeRule",
    "ReorderRequest",
    "RuleChange",
    "RuleEnvelope",
    "RuleExplanation",
    "RuleMove",
    "RulesetDiff",
    "RulesetDocument",
    "RulesetRead",
    "SourceChange",
    "SourceOwnersChange",
    "SourceRef",
    "SourcesRead",
    "TestCase",
    "TestRequest",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class RulesetRead(BaseModel):
    """The stored rules in evaluation order, at a version."""

    model_config = _FROZEN

    version: int
    rules: list[Rule]
    sources: dict[str, list[str]] | None = None
    """Token id -> the teams that own its alerts; only when some are assigned."""


class RuleEnvelope(BaseModel):
    """One rule and the ruleset version it was read from or written at."""

    model_config = _FROZEN

    rule: Rule
    version: int


class Deleted(BaseModel):
    model_config = _FROZEN

    deleted: str
    """The id or name the request named."""
    version: int


class RuleChange(BaseModel):
    model_config = _FROZEN

    id: str
    name: str
    fields: list[str]
    """The fields whose value changed (``continue`` as in YAML)."""
    before: Rule
    after: Rule


class RuleMove(BaseModel):
    model_config = _FROZEN

    id: str
    name: str
    from_: int = Field(alias="from")
    to: int


class SourceOwnersChange(BaseModel):
    """A source (producer token id) whose owning teams changed."""

    model_config = _FROZEN

    token_id: str
    before: list[str]
    after: list[str]


class RulesetDiff(BaseModel):
    """What a change adds, removes, changes and moves, and which sources changed owners."""

    model_config = _FROZEN

    added: list[Rule]
    removed: list[Rule]
    changed: list[RuleChange]
    moved: list[RuleMove]
    sources: list[SourceOwnersChange] = []


class ChangeReport(BaseModel):
    """The outcome of ``apply`` or ``reorder`` (or of its dry run)."""

    model_config = _FROZEN

    applied: bool
    """False for a dry run or when nothing changed."""
    dry_run: bool
    version: int
    diff: RulesetDiff
    diff_text: list[str]
    """The diff as lines a person reads (``+ name``, ``- name``, ``~ name: fields``)."""


class LintFinding(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: str
    rule_id: str
    kind: str
    """``disabled``, ``unreachable``, ``never_matches``, ``shadowed``, ``unknown_team``, ..."""
    severity: Literal["error", "warning"]
    message: str
    by: str | None = None
    """For ``unreachable`` and ``shadowed``: the earlier rule responsible."""
    team: str | None = None
    """For ``unknown_team``: the team no one created."""


class LintReport(BaseModel):
    model_config = _FROZEN

    ok: bool
    """True when no finding is an error."""
    ruleset_version: int
    findings: list[LintFinding]


class ConditionResult(BaseModel):
    model_config = _FROZEN

    field: str
    operator: str
    values: list[Any]
    case_insensitive: bool
    on_missing: str | None
    value: Any
    """What the alert holds at ``field`` (None when missing)."""
    missing: bool
    result: bool


class GroupResult(BaseModel):
    model_config = _FROZEN

    matched: bool
    conditions: list[ConditionResult]


class RuleExplanation(BaseModel):
    """One rule as evaluated for the alert."""

    model_config = _FROZEN

    id: str
    name: str
    position: int
    fallback: bool
    continue_: bool = Field(alias="continue")
    destinations: list[str]
    matched: bool
    catch_all: bool
    groups: list[GroupResult]


class MatchedRule(BaseModel):
    model_config = _FROZEN

    id: str
    name: str


class OutOfScopeRule(BaseModel):
    """A team rule that did not see the alert, and why."""

    model_config = _FROZEN

    id: str
    name: str
    owner_team: str | None
    reason: str


class SourcesRead(BaseModel):
    """Alert sources (producer token ids) assigned to teams, at a ruleset version."""

    model_config = _FROZEN

    version: int
    sources: dict[str, list[str]]


class SourceChange(ChangeReport):
    """The outcome of assigning (or removing) one source."""

    token_id: str
    teams: list[str]


class ExplainedSource(BaseModel):
    """Who published the alert, as far as scoping goes."""

    model_config = _FROZEN

    token_id: str | None
    team: str | None
    """The team of a team token."""
    owners: list[str]
    """Teams whose team rules see this alert (its team token's team, assigned teams)."""


class Explanation(BaseModel):
    """Where an alert goes and why: every rule evaluated to reach the decision, in order."""

    model_config = _FROZEN

    teams: list[str]
    routed: bool
    fallback: bool
    matched_rules: list[MatchedRule]
    ruleset_version: int
    source: ExplainedSource
    evaluated: list[RuleExplanation]
    out_of_scope: list[OutOfScopeRule] = []
    """Team rules skipped because the alert's source is not their team's."""


class CaseResult(BaseModel):
    model_config = _FROZEN

    name: str
    passed: bool
    expected_teams: list[str]
    teams: list[str]
    matched_rules: list[str]
    fallback: bool


class CaseReport(BaseModel):
    """The outcome of ``test`` cases (like ``amtool config routes test``)."""

    model_config = _FROZEN

    passed: bool
    total: int
    failed: int
    ruleset_version: int
    results: list[CaseResult]


# -- request bodies ---------------------------------------------------------------------------
# The engine checks what a schema cannot state (RE2 regexes, field paths, operator arity, known
# teams) and answers 422 with its own code (invalid_rule, invalid_alert, invalid_document).

_REQUEST = ConfigDict(frozen=True, extra="forbid")
TeamName = Annotated[str, StringConstraints(pattern=TEAM_RE.pattern)]
RuleRef = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class SourceRef(BaseModel):
    """Who published the alert: a token id (a stored team token brings its team), or a
    token id and its team; absent, an unknown publisher, which only org rules see."""

    model_config = _REQUEST

    token_id: str | None = None
    team: TeamName | None = None


class ExplainRequest(BaseModel):
    model_config = _REQUEST

    alert: dict[str, Any]
    """The alert's fields (``shared.alert.Alert``; ``source`` and ``summary`` may be left out)."""
    rules: list[dict[str, Any]] | None = None
    """Explain against these rules (the ``rules`` of a ruleset document) instead of the stored."""
    source: SourceRef | None = None


class TestCase(BaseModel):
    model_config = _REQUEST

    name: str | None = None
    alert: dict[str, Any]
    expect_teams: list[str] = []
    source: SourceRef | None = None


class TestRequest(BaseModel):
    model_config = _REQUEST

    cases: list[TestCase] = Field(min_length=1)
    rules: list[dict[str, Any]] | None = None


class LintRequest(BaseModel):
    model_config = _REQUEST

    rules: list[dict[str, Any]] | None = None
    """Lint these rules instead of the stored ones."""


class ReorderRequest(BaseModel):
    model_config = _REQUEST

    rules: list[RuleRef]
    """Every rule's id or name, in the new order."""


class RulesetDocument(BaseModel):
    """What ``apply`` takes (as JSON or YAML): the whole ruleset, and optionally the sources."""

    model_config = _REQUEST

    rules: list[Rule]
    sources: dict[str, list[TeamName]] | None = None
    """Token id -> the teams that own its alerts (replaces every assignment when given)."""
