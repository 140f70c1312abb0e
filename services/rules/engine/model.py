"""Routing rules as data: conditions, groups, rules and a versioned, ordered ruleset.

A model that exists is valid: every check that needs no outside knowledge (operators, value
counts, regex cost, field names, unique names) runs when it is built. Whether teams exist is
checked by the store against Redis. :func:`parse_ruleset` / :func:`parse_rule` turn pydantic's
errors into :class:`RulesetInvalidError` naming the rule, the condition and the reason.
"""

from __future__ import annotations

import re
import uuid
from enum import StrEnum
from typing import Any, Final

import re2
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.rules.engine.errors import Problem, RulesetInvalidError
from services.rules.engine.fields import field_error
from shared.teams import TEAM_NAME_RE

__all__ = [
    "MAX_REGEX_PROGRAM",
    "MAX_RULES",
    "MAX_VALUES",
    "NEGATIVE_OPERATORS",
    "TEAM_RE",
    "Condition",
    "ConditionGroup",
    "OnMissing",
    "Operator",
    "Rule",
    "RuleScope",
    "Ruleset",
    "compile_regex",
    "new_rule_id",
    "parse_rule",
    "parse_ruleset",
]

MAX_RULES: Final = 20_000
MAX_SOURCES: Final = 10_000
"""Most source assignments (token id -> teams) one ruleset may hold."""
MAX_GROUPS: Final = 32
MAX_CONDITIONS: Final = 32
MAX_VALUES: Final = 1_000
"""Most values one condition may list."""
MAX_VALUE_CHARS: Final = 1_024
MAX_REGEX_CHARS: Final = 512
MAX_REGEX_PROGRAM: Final = 2_000
"""Largest compiled RE2 program accepted; bigger patterns are refused as too costly."""
_REGEX_MAX_MEM: Final = 1 << 20
TEAM_RE: Final = TEAM_NAME_RE
"""Team names double as Kafka topic suffixes (declared in :mod:`shared.teams`)."""
NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Operator(StrEnum):
    is_one_of = "is_one_of"
    is_not_one_of = "is_not_one_of"
    equals = "equals"
    not_equals = "not_equals"
    contains = "contains"
    does_not_contain = "does_not_contain"
    starts_with = "starts_with"
    ends_with = "ends_with"
    matches_regex = "matches_regex"
    not_matches_regex = "not_matches_regex"
    exists = "exists"
    is_empty = "is_empty"


NEGATIVE_OPERATORS: Final = frozenset(
    {
        Operator.is_not_one_of,
        Operator.not_equals,
        Operator.does_not_contain,
        Operator.not_matches_regex,
    }
)
"""Operators that are true on a missing field unless ``on_missing`` says otherwise."""
_PRESENCE_OPERATORS: Final = frozenset({Operator.exists, Operator.is_empty})
_SINGLE_VALUE: Final = frozenset(
    {Operator.equals, Operator.not_equals, Operator.matches_regex, Operator.not_matches_regex}
)


class RuleScope(StrEnum):
    """Which alerts a rule may see (see :mod:`.scope`)."""

    org = "org"
    """Every alert. Only admins (owner/admin users, global tokens) write org rules."""
    team = "team"
    """Only alerts from sources the owner team owns: its team tokens, sources assigned to it."""


class OnMissing(StrEnum):
    """What a condition yields when its field is missing."""

    match = "match"
    no_match = "no_match"


def new_rule_id() -> str:
    return "r_" + uuid.uuid4().hex[:16]


def compile_regex(pattern: str, *, case_insensitive: bool) -> Any:
    """An RE2 regex (linear time, no backtracking); raises ``ValueError`` if bad or too costly."""
    if len(pattern) > MAX_REGEX_CHARS:
        raise ValueError(f"regex is longer than {MAX_REGEX_CHARS} characters")
    options = re2.Options()
    options.max_mem = _REGEX_MAX_MEM
    options.log_errors = False
    options.case_sensitive = not case_insensitive
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(f"invalid regex {pattern!r}: {reason}") from None
    if compiled.programsize > MAX_REGEX_PROGRAM:
        raise ValueError(
            f"regex {pattern!r} is too costly (program size {compiled.programsize} > "
            f"{MAX_REGEX_PROGRAM}); simplify it or split it into several conditions"
        )
    return compiled


def _scalar_text(value: Any) -> Any:
    # YAML turns `values: [1, true]` into numbers and booleans; compare them as alert text does.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


class Condition(BaseModel):
    """One test of one field. ``value: x`` is accepted as shorthand for ``values: [x]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: str = Field(min_length=1)
    """An alert attribute or a dotted path into ``labels``, ``annotations``, ``payload``."""
    operator: Operator
    values: tuple[str, ...] = ()
    """Operands; ``is_one_of`` and friends match any of them."""
    case_insensitive: bool = False
    """Compare case-insensitively (Unicode casefold; regexes get RE2's ``(?i)``)."""
    on_missing: OnMissing | None = None
    """Override the result on a missing field (default: positive false, negative true)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" in data:
            data = dict(data)
            if "values" in data:
                raise ValueError("give either 'value' or 'values', not both")
            data["values"] = [data.pop("value")]
        if isinstance(data, dict) and isinstance(data.get("values"), list):
            data = {**data, "values": [_scalar_text(v) for v in data["values"]]}
        return data

    @model_validator(mode="after")
    def _check(self) -> Condition:
        if (reason := field_error(self.field)) is not None:
            raise ValueError(reason)
        op, count = self.operator, len(self.values)
        if op in _PRESENCE_OPERATORS:
            if count:
                raise ValueError(f"operator {op.value} takes no values")
            if self.on_missing is not None:
                raise ValueError(f"operator {op.value} tests presence itself; drop on_missing")
            return self
        if count == 0:
            raise ValueError(f"operator {op.value} needs at least one value (empty value list)")
        if op in _SINGLE_VALUE and count != 1:
            raise ValueError(f"operator {op.value} takes exactly one value, got {count}")
        if count > MAX_VALUES:
            raise ValueError(f"too many values: {count} > {MAX_VALUES}")
        for value in self.values:
            if len(value) > MAX_VALUE_CHARS:
                raise ValueError(f"a value is longer than {MAX_VALUE_CHARS} characters")
        if op in (Operator.matches_regex, Operator.not_matches_regex):
            compile_regex(self.values[0], case_insensitive=self.case_insensitive)
        return self

    @property
    def negative(self) -> bool:
        return self.operator in NEGATIVE_OPERATORS

    def result_on_missing(self) -> bool:
        """What this condition yields when its field is missing."""
        if self.operator is Operator.exists:
            return False
        if self.operator is Operator.is_empty:
            return True
        if self.on_missing is not None:
            return self.on_missing is OnMissing.match
        return self.negative


class ConditionGroup(BaseModel):
    """Conditions that must all hold (AND). A rule's groups are ORed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    conditions: tuple[Condition, ...] = Field(min_length=1, max_length=MAX_CONDITIONS)


class Rule(BaseModel):
    """One routing rule. No condition groups means it matches every alert (a catch-all)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    id: str = Field(default_factory=new_rule_id, pattern=ID_RE.pattern)
    """Stable across updates; generated when absent."""
    name: str = Field(pattern=NAME_RE.pattern)
    """Unique within the ruleset; files and the CLI refer to rules by name."""
    owner_team: str = Field(pattern=TEAM_RE.pattern)
    """The team that owns (may change) this rule."""
    scope: RuleScope = RuleScope.org
    """``team``: the rule only sees alerts from sources ``owner_team`` owns."""
    position: int = Field(default=0, ge=0)
    """Index in the ruleset; set by the ruleset from the order of ``rules``."""
    enabled: bool = True
    condition_groups: tuple[ConditionGroup, ...] = Field(default=(), max_length=MAX_GROUPS)
    """ORed groups of ANDed conditions; empty matches every alert."""
    destinations: tuple[str, ...] = Field(min_length=1, max_length=64)
    """Teams that receive a matching alert, in order."""
    continue_: bool = Field(default=False, alias="continue")
    """Keep evaluating later rules after this one matched (fan-out)."""
    fallback: bool = False
    """Only considered when no ordinary rule matched."""

    @field_validator("destinations")
    @classmethod
    def _check_destinations(cls, destinations: tuple[str, ...]) -> tuple[str, ...]:
        for team in destinations:
            if not TEAM_RE.match(team):
                raise ValueError(f"destination {team!r} is not a valid team name")
        return tuple(dict.fromkeys(destinations))

    def dump(self) -> dict[str, Any]:
        """The rule as the API and files show it (``continue`` spelled as in YAML)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def same_content(self, other: Rule) -> bool:
        """Equal apart from ``position``."""
        return self.model_copy(update={"position": 0}) == other.model_copy(update={"position": 0})


class Ruleset(BaseModel):
    """An ordered list of rules at a version. Positions follow the list order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(default=0, ge=0)
    """Monotonic; bumped by the store on every change. 0 means nothing was ever stored."""
    rules: tuple[Rule, ...] = Field(default=(), max_length=MAX_RULES)
    sources: dict[str, tuple[str, ...]] = Field(default_factory=dict, max_length=MAX_SOURCES)
    """Source assignments by admins: producer token id -> the teams that own its alerts (on top
    of a team token's own team)."""

    @field_validator("sources")
    @classmethod
    def _check_sources(cls, sources: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        checked: dict[str, tuple[str, ...]] = {}
        for token_id, teams in sorted(sources.items()):
            if not ID_RE.match(token_id):
                raise ValueError(f"source {token_id!r} is not a token id")
            for team in teams:
                if not TEAM_RE.match(team):
                    raise ValueError(f"source {token_id!r}: {team!r} is not a valid team name")
            if teams:  # assigning no team is removing the assignment
                checked[token_id] = tuple(sorted(set(teams)))
        return checked

    @model_validator(mode="after")
    def _positions_and_uniqueness(self) -> Ruleset:
        names: set[str] = set()
        ids: set[str] = set()
        for rule in self.rules:
            if rule.name in names:
                raise ValueError(f"rule name {rule.name!r} is used twice; names must be unique")
            if rule.id in ids:
                raise ValueError(f"rule id {rule.id!r} is used twice")
            names.add(rule.name)
            ids.add(rule.id)
        if any(rule.position != index for index, rule in enumerate(self.rules)):
            fixed = tuple(
                rule if rule.position == index else rule.model_copy(update={"position": index})
                for index, rule in enumerate(self.rules)
            )
            object.__setattr__(self, "rules", fixed)
        return self

    def evolve(self, *, version: int, rules: tuple[Rule, ...] | None = None) -> Ruleset:
        """A validated copy at ``version`` with new ``rules`` (source assignments kept)."""
        return Ruleset(
            version=version, rules=self.rules if rules is None else rules, sources=self.sources
        )

    def by_id(self, rule_id: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.id == rule_id), None)

    def by_name(self, name: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.name == name), None)

    def teams(self) -> set[str]:
        """Every team the ruleset names (owners and destinations)."""
        named = {team for rule in self.rules for team in (rule.owner_team, *rule.destinations)}
        return named | {team for teams in self.sources.values() for team in teams}

    def dump(self) -> dict[str, Any]:
        """The ruleset as stored and shown; ``sources`` only when some are assigned."""
        body: dict[str, Any] = {"version": self.version, "rules": [r.dump() for r in self.rules]}
        if self.sources:
            body["sources"] = {token_id: list(teams) for token_id, teams in self.sources.items()}
        return body


def _condition_path(loc: tuple[int | str, ...]) -> str | None:
    """``condition_groups[0].conditions[1]`` from a pydantic error location inside a rule."""
    if len(loc) >= 4 and loc[0] == "condition_groups" and loc[2] == "conditions":
        return f"condition_groups[{loc[1]}].conditions[{loc[3]}]"
    if len(loc) >= 2 and loc[0] == "condition_groups":
        return f"condition_groups[{loc[1]}]"
    return None


def _reason(error: Any, loc: tuple[int | str, ...]) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if loc and loc[-1] == "operator" and error["type"] == "enum":
        given = error.get("input")
        message = f"unknown operator {given!r}; use one of {', '.join(o.value for o in Operator)}"
    attribute = next((str(part) for part in reversed(loc) if isinstance(part, str)), "")
    if attribute and attribute not in ("conditions", "condition_groups") and attribute != loc[0]:
        return f"{attribute}: {message}"
    if loc and isinstance(loc[0], str) and not loc[0].startswith("condition"):
        return f"{loc[0]}: {message}"
    return message


def _rule_label(raw: Any, index: int | None) -> str:
    if isinstance(raw, dict) and isinstance(raw.get("name"), str):
        return str(raw["name"])
    return f"#{index}" if index is not None else "<rule>"


def _problems(
    exc: ValidationError, raw_rules: list[Any] | None, single: Any = None
) -> list[Problem]:
    problems: list[Problem] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        if single is None:
            if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
                index = loc[1]
                raw = raw_rules[index] if raw_rules and index < len(raw_rules) else None
                label, inner = _rule_label(raw, index), loc[2:]
            else:
                label, inner = "<ruleset>", loc
        else:
            label, inner = _rule_label(single, None), loc
        problems.append(
            {"rule": label, "condition": _condition_path(inner), "reason": _reason(error, inner)}
        )
    return problems


def parse_ruleset(data: Any, *, version: int = 0) -> Ruleset:
    """A ruleset from a mapping (``{"rules": [...]}``); raises :class:`RulesetInvalidError`."""
    if not isinstance(data, dict) or not isinstance(data.get("rules", []), list):
        raise RulesetInvalidError(
            [{"rule": "<ruleset>", "condition": None, "reason": "expected a mapping with 'rules'"}]
        )
    raw_rules: list[Any] = data.get("rules") or []
    try:
        return Ruleset.model_validate(
            {"version": version, "rules": raw_rules, "sources": data.get("sources") or {}}
        )
    except ValidationError as exc:
        raise RulesetInvalidError(_problems(exc, raw_rules)) from None


def parse_rule(data: Any) -> Rule:
    """One rule from a mapping; raises :class:`RulesetInvalidError`."""
    try:
        return Rule.model_validate(data)
    except ValidationError as exc:
        raise RulesetInvalidError(_problems(exc, None, single=data if data else {})) from None
