"""Rule evaluation cost per alert, compiled vs reference, at 10 to 10,000 rules.

The generated ruleset looks like a large organisation's: most rules route by service or team
label (``is_one_of`` / ``equals``, plus an environment or severity filter), a few use regexes
or negative operators only, some fan out with ``continue``, and one fallback catches the rest.
Alerts mix matching services, unknown services and label-routed ones.

The ``tenancy`` block measures the same 10,000 rules with every other rule team-scoped and
each alert from a team token (``services.rules.engine.scope``) against the all-org ruleset,
same alerts, same run: scoping must not cost a measurable amount per alert.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from services.rules.engine import reference
from services.rules.engine.compiled import compile_ruleset
from services.rules.engine.model import RuleScope, Ruleset, parse_ruleset
from services.rules.engine.scope import AlertSource
from shared.alert import Alert

__all__ = ["run"]

TEAMS = ["payments", "platform", "search", "security"]
SIZES = (10, 100, 1_000, 10_000)
TARGET_MEDIAN_US = 20.0
TARGET_RATIO = 50.0


def _rule(n: int, rng: random.Random) -> dict[str, Any]:
    team = TEAMS[n % len(TEAMS)]
    kind = n % 100
    groups: list[dict[str, Any]]
    if kind == 0:  # 1 %: regex-only, nothing to index
        groups = [
            {
                "conditions": [
                    {
                        "field": "summary",
                        "operator": "matches_regex",
                        "values": [f"svc{n}-.*timeout"],
                    }
                ]
            }
        ]
    elif kind == 1:  # 1 %: routed by a team label, case-insensitive
        groups = [
            {
                "conditions": [
                    {
                        "field": "labels.team",
                        "operator": "equals",
                        "values": [f"team{n}"],
                        "case_insensitive": True,
                    }
                ]
            }
        ]
    else:
        services = [f"svc{n}", f"svc{n}-worker"]
        conditions: list[dict[str, Any]] = [
            {"field": "service", "operator": "is_one_of", "values": services},
            {"field": "labels.env", "operator": "is_not_one_of", "values": ["staging", "dev"]},
        ]
        if n % 3 == 0:
            conditions.append(
                {"field": "severity", "operator": "is_one_of", "values": ["critical", "error"]}
            )
        groups = [{"conditions": conditions}]
        if n % 7 == 0:
            groups.append(
                {
                    "conditions": [
                        {
                            "field": "labels.component",
                            "operator": "starts_with",
                            "values": [f"c{n}-"],
                        },
                        {"field": "service", "operator": "equals", "values": [f"svc{n}-batch"]},
                    ]
                }
            )
    return {
        "name": f"rule-{n}",
        "owner_team": team,
        "destinations": [team],
        "continue": rng.random() < 0.05,
        "condition_groups": groups,
    }


def _ruleset(size: int, rng: random.Random) -> Ruleset:
    rules = [_rule(n, rng) for n in range(size)]
    rules.append(
        {
            "name": "fallback",
            "owner_team": "platform",
            "destinations": ["platform"],
            "fallback": True,
        }
    )
    return parse_ruleset({"rules": rules}, version=1)


def _alerts(size: int, rng: random.Random, count: int) -> list[Alert]:
    alerts = []
    for _ in range(count):
        n = rng.randrange(size * 2)  # half of them name a service no rule knows
        alerts.append(
            Alert(
                source="bench",
                summary=f"svc{n}-api request timeout",
                service=f"svc{n}" if rng.random() < 0.8 else f"svc{n}-worker",
                severity=rng.choice(["critical", "error", "warning"]),
                labels={
                    "env": rng.choice(["prod", "prod", "staging"]),
                    "team": f"TEAM{n}",
                    "component": f"c{n}-db",
                },
            )
        )
    return alerts


def _median_us(fn: Any, alerts: list[Any]) -> float:
    samples = []
    for alert in alerts:
        start = time.perf_counter_ns()
        fn(alert)
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def _tenancy(ruleset: Ruleset, alerts: list[Alert]) -> dict[str, Any]:
    """Half the rules team-scoped, alerts from team tokens, vs all-org rules (same alerts)."""
    scoped = ruleset.evolve(
        version=ruleset.version,
        rules=tuple(
            r.model_copy(update={"scope": RuleScope.team}) if r.position % 2 else r
            for r in ruleset.rules
        ),
    )
    compiled, compiled_scoped = compile_ruleset(ruleset), compile_ruleset(scoped)
    sources = [AlertSource(token_id=f"tok_{n % 8}", team=TEAMS[n % 4]) for n in range(8)]
    pairs = [(alert, sources[n % 8]) for n, alert in enumerate(alerts)]
    for alert, source in pairs[:200]:
        assert compiled_scoped.evaluate(alert, source) == reference.evaluate(scoped, alert, source)
    org_us = _median_us(lambda p: compiled.evaluate(p[0], p[1]), pairs)
    scoped_us = _median_us(lambda p: compiled_scoped.evaluate(p[0], p[1]), pairs)
    return {
        "rules": len(ruleset.rules),
        "org_only_median_us": round(org_us, 2),
        "half_team_scoped_median_us": round(scoped_us, 2),
        "ratio": round(scoped_us / org_us, 2),
    }


def run() -> dict[str, Any]:
    rng = random.Random(4)
    table = []
    for size in SIZES:
        ruleset = _ruleset(size, rng)
        started = time.perf_counter()
        compiled = compile_ruleset(ruleset)
        compile_ms = (time.perf_counter() - started) * 1000
        alerts = _alerts(size, rng, 20_000)
        for alert in alerts[:200]:  # warm-up and a sanity check that they agree
            assert compiled.evaluate(alert) == reference.evaluate(ruleset, alert)
        compiled_us = _median_us(compiled.evaluate, alerts)
        ref_alerts = alerts[: max(50, min(2_000, 200_000 // size))]
        reference_us = _median_us(lambda a, rs=ruleset: reference.evaluate(rs, a), ref_alerts)
        table.append(
            {
                "rules": size,
                "compiled_median_us": round(compiled_us, 2),
                "reference_median_us": round(reference_us, 2),
                "speedup": round(reference_us / compiled_us, 1),
                "compile_ms": round(compile_ms, 1),
            }
        )
    largest = table[-1]
    return {
        "table": table,
        "tenancy": _tenancy(ruleset, alerts),
        "target": {"median_us_at_10k": TARGET_MEDIAN_US, "speedup_at_10k": TARGET_RATIO},
        "meets_target": largest["compiled_median_us"] <= TARGET_MEDIAN_US
        and largest["speedup"] >= TARGET_RATIO,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
