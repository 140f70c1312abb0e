"""What changes between two rulesets, by rule id (files are matched to stored rules by name)."""

from __future__ import annotations

from typing import Any

from services.rules.engine.model import Rule, Ruleset

__all__ = ["adopt_ids", "diff_rulesets", "is_empty_diff", "render_diff"]

_COMPARED = (
    "name",
    "owner_team",
    "scope",
    "enabled",
    "condition_groups",
    "destinations",
    "continue_",
)


def adopt_ids(current: Ruleset, incoming: Ruleset) -> Ruleset:
    """``incoming`` with each rule that has no stored id given the id of the stored rule of the
    same name, so an edited file updates rules instead of replacing them."""
    known = {rule.id for rule in current.rules}
    rules: list[Rule] = []
    for rule in incoming.rules:
        stored = current.by_name(rule.name)
        if rule.id not in known and stored is not None and incoming.by_id(stored.id) is None:
            rule = rule.model_copy(update={"id": stored.id})
        rules.append(rule)
    return incoming.evolve(version=incoming.version, rules=tuple(rules))


def _changed_fields(before: Rule, after: Rule) -> list[str]:
    names = [f for f in _COMPARED if getattr(before, f) != getattr(after, f)]
    if before.fallback != after.fallback:
        names.append("fallback")
    return [("continue" if name == "continue_" else name) for name in names]


def diff_rulesets(before: Ruleset, after: Ruleset) -> dict[str, Any]:
    """``added``, ``removed``, ``changed`` (with before/after) and ``moved`` rules, and
    ``sources`` whose owning teams changed (``{"token_id", "before", "after"}``).

    A rule counts as moved when its place among the rules kept on both sides changed, so an
    insertion at the top does not report every other rule as moved.
    """
    old = {rule.id: rule for rule in before.rules}
    new = {rule.id: rule for rule in after.rules}
    kept_before = [rule.id for rule in before.rules if rule.id in new]
    kept_after = [rule.id for rule in after.rules if rule.id in old]
    rank_before = {rule_id: n for n, rule_id in enumerate(kept_before)}
    changed, moved = [], []
    for n, rule_id in enumerate(kept_after):
        was, now = old[rule_id], new[rule_id]
        if fields := _changed_fields(was, now):
            changed.append(
                {
                    "id": rule_id,
                    "name": now.name,
                    "fields": fields,
                    "before": was.dump(),
                    "after": now.dump(),
                }
            )
        if rank_before[rule_id] != n:
            moved.append(
                {"id": rule_id, "name": now.name, "from": was.position, "to": now.position}
            )
    return {
        "added": [rule.dump() for rule in after.rules if rule.id not in old],
        "removed": [rule.dump() for rule in before.rules if rule.id not in new],
        "changed": changed,
        "moved": moved,
        "sources": _source_changes(before, after),
    }


def _source_changes(before: Ruleset, after: Ruleset) -> list[dict[str, Any]]:
    return [
        {
            "token_id": token_id,
            "before": list(before.sources.get(token_id, ())),
            "after": list(after.sources.get(token_id, ())),
        }
        for token_id in sorted(before.sources.keys() | after.sources.keys())
        if before.sources.get(token_id) != after.sources.get(token_id)
    ]


def is_empty_diff(diff: dict[str, Any]) -> bool:
    keys = ("added", "removed", "changed", "moved", "sources")
    return not any(diff.get(key) for key in keys)


def render_diff(diff: dict[str, Any]) -> list[str]:
    """Human-readable lines: ``+`` added, ``-`` removed, ``~`` changed, ``>`` moved."""
    lines = [
        f"+ {r['name']} (owner {r['owner_team']}, to {', '.join(r['destinations'])})"
        for r in diff["added"]
    ]
    lines += [f"- {r['name']}" for r in diff["removed"]]
    lines += [f"~ {c['name']}: {', '.join(c['fields'])}" for c in diff["changed"]]
    lines += [f"> {m['name']}: position {m['from']} -> {m['to']}" for m in diff["moved"]]
    lines += [
        f"@ source {c['token_id']}: {', '.join(c['before']) or '-'} -> "
        f"{', '.join(c['after']) or '-'}"
        for c in diff.get("sources", ())
    ]
    return lines or ["no changes"]
