"""The compiled evaluator: same answers as :mod:`.reference`, cost independent of rule count.

Each condition group of each rule is keyed, where possible, by one of its positive
``is_one_of`` / ``equals`` conditions: an inverted index maps ``field -> value -> groups``.
For an alert only the groups found under its own field values are candidates, plus the few
groups that have no such condition ("always" candidates). Candidates are numbered in rule
order, so sorting them restores position order and first-match/``continue`` semantics apply
unchanged. Every candidate still checks all its conditions, the index only prunes.

Team-scoped rules (:mod:`.scope`) are indexed like any other; a candidate whose rule is scoped
to a team that does not own the alert's source is skipped before its conditions are checked.

A decision depends only on the values of the fields the enabled rules read and on the source's
owners, and a batch repeats those (a few services and severities). :meth:`evaluate_many` therefore
evaluates once per distinct input of a batch and shares the (immutable) decision, unless a rule
reads a field that is unique per alert (:data:`PER_ALERT_FIELDS`), where every input is distinct.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Final

import re2

from services.rules.engine.decision import RoutingDecision
from services.rules.engine.fields import FieldReader, make_getter
from services.rules.engine.model import (
    Condition,
    OnMissing,
    Operator,
    Rule,
    RuleScope,
    Ruleset,
    compile_regex,
)
from services.rules.engine.scope import NO_OWNERS, UNKNOWN_SOURCE, AlertSource, owners_of
from shared.alert import AlertView

__all__ = ["PER_ALERT_FIELDS", "CompiledRuleset", "compile_ruleset"]

_UNSET: Final[Any] = object()
_Pred = Callable[[str], bool]
_Check = tuple[str, FieldReader, _Pred, bool]
"""(field, reader, predicate on a present value, result on a missing value)."""
_INDEXABLE: Final = frozenset({Operator.is_one_of, Operator.equals})
_SET_CHUNK: Final = 256
_SET_MAX_MEM: Final = 64 << 20
_MAX_OWNER_CACHE: Final = 10_000
PER_ALERT_FIELDS: Final = frozenset({"id", "dedup_key", "summary", "annotations", "payload"})
"""Fields (and containers, for any path into them) whose value is unique per alert in practice:
a rule reading one makes every input of a batch distinct, so decisions are not shared."""
_DISTINCT_PROBE: Final = 64
"""After this many alerts of a batch, sharing stops if most inputs so far were distinct."""
_InputKey = Callable[[AlertView], Hashable]


def _input_key(readers: dict[str, FieldReader]) -> _InputKey | None:
    """What identifies an alert's input to the rules (the values of every field they read), or
    None when a rule reads a per-alert field. Specialised by arity: this runs once per alert."""
    if any(f.partition(".")[0] in PER_ALERT_FIELDS for f in readers):
        return None
    read = tuple(readers.values())
    if not read:
        return lambda alert: None
    if len(read) == 1:
        return read[0]
    if len(read) == 2:
        first, second = read
        return lambda alert: (first(alert), second(alert))
    return lambda alert: tuple([reader(alert) for reader in read])


def _predicate(condition: Condition) -> _Pred:
    op, ci = condition.operator, condition.case_insensitive
    operands = tuple(v.casefold() for v in condition.values) if ci else condition.values
    negate = condition.negative
    pred: _Pred
    if op in (Operator.matches_regex, Operator.not_matches_regex):
        match = _regex_set([_set_pattern(condition)]).Match
        if negate:
            return lambda v: match(v) is None
        return lambda v: match(v) is not None
    if op is Operator.exists:
        return lambda v: True
    if op is Operator.is_empty:
        return lambda v: v == ""
    if op in (Operator.is_one_of, Operator.is_not_one_of, Operator.equals, Operator.not_equals):
        members = frozenset(operands)
        pred = (lambda v: v.casefold() in members) if ci else members.__contains__
    elif op in (Operator.contains, Operator.does_not_contain):
        if len(operands) == 1:
            needle = operands[0]
            pred = (lambda v: needle in v.casefold()) if ci else (lambda v: needle in v)
        else:
            pred = (
                (lambda v: any(o in v.casefold() for o in operands))
                if ci
                else (lambda v: any(o in v for o in operands))
            )
    elif op is Operator.starts_with:
        pred = (
            (lambda v: v.casefold().startswith(operands))
            if ci
            else (lambda v: v.startswith(operands))
        )
    elif op is Operator.ends_with:
        pred = (
            (lambda v: v.casefold().endswith(operands)) if ci else (lambda v: v.endswith(operands))
        )
    else:  # pragma: no cover - the enum is exhausted above
        raise AssertionError(f"unhandled operator {op}")
    if negate:
        positive = pred
        return lambda v: not positive(v)
    return pred


def _set_pattern(condition: Condition) -> str:
    # One RE2 set serves case-sensitive and -insensitive patterns: fold the flag into each.
    pattern = condition.values[0]
    compile_regex(pattern, case_insensitive=condition.case_insensitive)  # validates, bounds cost
    return f"(?i:{pattern})" if condition.case_insensitive else pattern


def _regex_set(patterns: list[str]) -> Any:
    """An anchored RE2 set; ``Match`` returns the indices of every pattern that matches.

    The python wrapper's ``fullmatch`` costs several microseconds per call; a set's ``Match``
    goes straight to C++, so even single patterns use a set.
    """
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _SET_MAX_MEM
    regex_set = re2.Set.FullMatchSet(options)
    for pattern in patterns:
        regex_set.Add(pattern)
    regex_set.Compile()  # raises re2.error only beyond _SET_MAX_MEM, bounded by _SET_CHUNK
    return regex_set


@dataclass(slots=True)
class _RegexIndex:
    """Groups keyed by a positive ``matches_regex`` condition on one field."""

    field: str
    reader: FieldReader
    patterns: dict[str, list[int]] = dataclass_field(default_factory=dict)
    """Pattern (case flag folded in) -> group ids."""
    sets: list[tuple[Any, list[list[int]]]] = dataclass_field(default_factory=list)
    """Compiled sets (chunks of ``_SET_CHUNK`` patterns) with the groups of each pattern."""

    def build(self) -> None:
        items = list(self.patterns.items())
        for start in range(0, len(items), _SET_CHUNK):
            chunk = items[start : start + _SET_CHUNK]
            self.sets.append((_regex_set([p for p, _ in chunk]), [g for _, g in chunk]))


@dataclass(slots=True)
class _Index:
    field: str
    reader: FieldReader
    exact: dict[str, list[int]] = dataclass_field(default_factory=dict)
    folded: dict[str, list[int]] = dataclass_field(default_factory=dict)
    """Keys casefolded, for ``case_insensitive`` conditions."""


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    id: str
    name: str
    destinations: tuple[str, ...]
    continue_: bool
    team: str | None
    """The owner team when the rule is team-scoped; None for org rules."""


def _index_key(conditions: tuple[Condition, ...]) -> Condition | None:
    """The condition that keys this group: a hash-indexable one, else a positive regex."""
    usable = [c for c in conditions if c.on_missing is not OnMissing.match]
    for condition in usable:
        if condition.operator in _INDEXABLE:
            return condition
    for condition in usable:
        if condition.operator is Operator.matches_regex:
            return condition
    return None


class _Pass:
    """One evaluation pass (ordinary rules, or fallback rules) over an inverted index."""

    __slots__ = (
        "_always",
        "_checks",
        "_group_rule",
        "_indexes",
        "_regex_indexes",
        "rules",
        "scoped",
    )

    def __init__(self, rules: list[Rule], readers: dict[str, FieldReader]) -> None:
        self.rules = [
            _CompiledRule(
                rule.id,
                rule.name,
                rule.destinations,
                rule.continue_,
                rule.owner_team if rule.scope is RuleScope.team else None,
            )
            for rule in rules
        ]
        self.scoped = any(rule.team is not None for rule in self.rules)
        """True when some rule is team-scoped (only then do owners matter)."""
        self._checks: list[tuple[_Check, ...]] = []
        self._group_rule: list[int] = []
        always: list[int] = []
        indexes: dict[str, _Index] = {}
        regex_indexes: dict[str, _RegexIndex] = {}
        for rule_index, rule in enumerate(rules):
            groups = [group.conditions for group in rule.condition_groups] or [()]
            for conditions in groups:
                group_id = len(self._checks)
                self._group_rule.append(rule_index)
                key = _index_key(conditions)
                # The index lookup proves the key condition, so only the others are checked.
                self._checks.append(
                    tuple(self._check(c, readers) for c in conditions if c is not key)
                )
                if key is None:
                    always.append(group_id)
                    continue
                if key.operator is Operator.matches_regex:
                    regex_index = regex_indexes.get(key.field)
                    if regex_index is None:
                        regex_index = regex_indexes[key.field] = _RegexIndex(
                            key.field, self._reader(key.field, readers)
                        )
                    regex_index.patterns.setdefault(_set_pattern(key), []).append(group_id)
                    continue
                index = indexes.get(key.field)
                if index is None:
                    index = indexes[key.field] = _Index(key.field, self._reader(key.field, readers))
                table = index.folded if key.case_insensitive else index.exact
                values = (
                    {v.casefold() for v in key.values} if key.case_insensitive else set(key.values)
                )
                for value in values:
                    table.setdefault(value, []).append(group_id)
        self._always = tuple(always)
        self._indexes = tuple(indexes.values())
        for regex_index in regex_indexes.values():
            regex_index.build()
        self._regex_indexes = tuple(regex_indexes.values())

    @staticmethod
    def _reader(field: str, readers: dict[str, FieldReader]) -> FieldReader:
        reader = readers.get(field)
        if reader is None:
            reader = readers[field] = make_getter(field)
        return reader

    @classmethod
    def _check(cls, condition: Condition, readers: dict[str, FieldReader]) -> _Check:
        reader = cls._reader(condition.field, readers)
        return (condition.field, reader, _predicate(condition), condition.result_on_missing())

    def run(
        self, alert: AlertView, memo: dict[str, str | None], owners: frozenset[str]
    ) -> list[_CompiledRule]:
        """The rules that match ``alert`` in order, honouring first-match and ``continue``;
        team rules of teams not in ``owners`` (the source's owners) are skipped."""
        candidates = list(self._always)
        sources = 1 if candidates else 0
        for index in self._indexes:
            value = memo.get(index.field, _UNSET)
            if value is _UNSET:
                value = memo[index.field] = index.reader(alert)
            if value is None:
                continue
            if index.exact and (hit := index.exact.get(value)):
                candidates.extend(hit)
                sources += 1
            if index.folded and (hit := index.folded.get(value.casefold())):
                candidates.extend(hit)
                sources += 1
        for regex_index in self._regex_indexes:
            value = memo.get(regex_index.field, _UNSET)
            if value is _UNSET:
                value = memo[regex_index.field] = regex_index.reader(alert)
            if value is None:
                continue
            for regex_set, groups in regex_index.sets:
                for pattern in regex_set.Match(value) or ():
                    candidates.extend(groups[pattern])
                    sources += 1
        if not candidates:
            return []
        if sources > 1:
            candidates.sort()
        matched: list[_CompiledRule] = []
        last_matched = -1
        group_rule, checks, rules, scoped = self._group_rule, self._checks, self.rules, self.scoped
        for group_id in candidates:
            rule_index = group_rule[group_id]
            if rule_index == last_matched:
                continue  # another group of a rule that already matched
            rule = rules[rule_index]
            if scoped and rule.team is not None and rule.team not in owners:
                continue  # a team rule never sees alerts from sources its team does not own
            if _holds(checks[group_id], alert, memo):
                matched.append(rule)
                if not rule.continue_:
                    break
                last_matched = rule_index
        return matched


def _holds(checks: tuple[_Check, ...], alert: AlertView, memo: dict[str, str | None]) -> bool:
    for name, reader, pred, on_missing in checks:
        value = memo.get(name, _UNSET)
        if value is _UNSET:
            value = memo[name] = reader(alert)
        if value is None:
            if not on_missing:
                return False
        elif not pred(value):
            return False
    return True


class CompiledRuleset:
    """A ruleset ready for the hot path. Immutable once built; swap the whole object."""

    __slots__ = ("_fallback", "_input_key", "_main", "_owners", "_scoped", "ruleset", "version")

    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        """The source ruleset (for explain, lint and the API)."""
        self.version = ruleset.version
        readers: dict[str, FieldReader] = {}
        enabled = [rule for rule in ruleset.rules if rule.enabled]
        self._main = _Pass([r for r in enabled if not r.fallback], readers)
        self._fallback = _Pass([r for r in enabled if r.fallback], readers)
        self._scoped = self._main.scoped or self._fallback.scoped
        self._owners: dict[AlertSource, frozenset[str]] = {}
        self._input_key = _input_key(readers)  # readers now holds every field the rules read

    def owners(self, source: AlertSource) -> frozenset[str]:
        """The teams owning ``source`` (cached: a ruleset is immutable, sources are few)."""
        if not self._scoped:
            return NO_OWNERS  # no team rule to scope
        found = self._owners.get(source)
        if found is None:
            if len(self._owners) >= _MAX_OWNER_CACHE:
                self._owners.clear()
            found = self._owners[source] = owners_of(self.ruleset, source)
        return found

    def evaluate(self, alert: AlertView, source: AlertSource = UNKNOWN_SOURCE) -> RoutingDecision:
        """Where ``alert`` from ``source`` goes; identical to :func:`.reference.evaluate`."""
        return self._decide(alert, self.owners(source) if self._scoped else NO_OWNERS)

    def _decide(self, alert: AlertView, owners: frozenset[str]) -> RoutingDecision:
        memo: dict[str, str | None] = {}
        matched = self._main.run(alert, memo, owners)
        fallback = False
        if not matched and self._fallback.rules:
            matched = self._fallback.run(alert, memo, owners)
            fallback = bool(matched)
        if len(matched) == 1:
            only = matched[0]
            return RoutingDecision(
                only.destinations, (only.id,), (only.name,), self.version, fallback
            )
        teams = tuple(dict.fromkeys(team for rule in matched for team in rule.destinations))
        return RoutingDecision(
            teams,
            tuple(rule.id for rule in matched),
            tuple(rule.name for rule in matched),
            self.version,
            fallback,
        )

    def evaluate_many(
        self, alerts: Iterable[AlertView], sources: Sequence[AlertSource] | None = None
    ) -> list[RoutingDecision]:
        """One decision per alert; ``sources[i]`` published ``alerts[i]`` (unknown if None).

        Alerts with the same input (see the module's docstring) share one decision object."""
        alerts = alerts if isinstance(alerts, Sequence) else list(alerts)
        if sources is not None and len(sources) != len(alerts):
            raise ValueError(f"{len(alerts)} alerts but {len(sources)} sources")
        if sources is None or not self._scoped:  # no team rule: the source cannot matter
            sources = None
        input_key = self._input_key
        if input_key is None:
            return self._evaluate_each(alerts, sources, 0)
        decide = self._decide
        shared: dict[tuple[Hashable, frozenset[str]], RoutingDecision] = {}
        decisions: list[RoutingDecision] = []
        owners = self.owners(UNKNOWN_SOURCE)
        last_source: AlertSource | None = None
        for n, alert in enumerate(alerts):
            if sources is not None and sources[n] is not last_source:  # runs of one token
                last_source = sources[n]
                owners = self.owners(last_source)
            key = (input_key(alert), owners)
            decision = shared.get(key)
            if decision is None:
                if n >= _DISTINCT_PROBE and 2 * len(shared) > n:  # mostly distinct: stop keying
                    decisions.extend(self._evaluate_each(alerts, sources, n))
                    return decisions
                decision = shared[key] = decide(alert, owners)
            decisions.append(decision)
        return decisions

    def _evaluate_each(
        self, alerts: Sequence[AlertView], sources: Sequence[AlertSource] | None, start: int
    ) -> list[RoutingDecision]:
        """One evaluation per alert from ``start`` on (sources None: the source cannot matter)."""
        evaluate = self.evaluate
        if sources is None:
            return [evaluate(alerts[n]) for n in range(start, len(alerts))]
        return [evaluate(alerts[n], sources[n]) for n in range(start, len(alerts))]


def compile_ruleset(ruleset: Ruleset) -> CompiledRuleset:
    """Build the inverted index for ``ruleset`` (linear in its size)."""
    return CompiledRuleset(ruleset)
