"""The figures next to their targets and same-run baselines (brief §8, issue #13)."""

from __future__ import annotations

from typing import Any

__all__ = ["summarise"]


def _rate(loops: dict[str, Any], name: str) -> float | None:
    figure = loops.get(name)
    return float(figure["per_s"]) if isinstance(figure, dict) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    throughput = result.get("throughput")
    if throughput:
        loops = throughput["loops"]
        router = _rate(loops, "router_at_least_once")
        ceiling = _rate(loops, "bare_librdkafka")
        quix = _rate(loops, "quix_streams")
        summary["router_vs_bare_librdkafka"] = {
            "ratio": _ratio(router, ceiling),
            "target": ">= 0.5",
            "met": (_ratio(router, ceiling) or 0) >= 0.5,
        }
        summary["router_vs_quix_streams"] = {
            "ratio": _ratio(router, quix),
            "target": ">= 2.0",
            "met": (_ratio(router, quix) or 0) >= 2.0,
        }
        summary["router_vs_bare_aiokafka"] = _ratio(router, _rate(loops, "bare_aiokafka"))
        summary["decisions_topic_on_vs_off"] = _ratio(
            _rate(loops, "router_decisions_via_topic"), router
        )
        summary["exactly_once_vs_at_least_once"] = _ratio(
            _rate(loops, "router_exactly_once"), router
        )
    latency = result.get("latency")
    if latency:
        bare, routed = latency["bare_librdkafka"]["p99_ms"], latency["router"]["p99_ms"]
        summary["latency_p99_router_vs_bare"] = {
            "ratio": _ratio(routed, bare),
            "target": "<= 1.1",
            "met": (_ratio(routed, bare) or 99) <= 1.1,
            "ratio_by_round": [
                _ratio(r["p99_ms"], b["p99_ms"])
                for r, b in zip(
                    latency["rounds"]["router"], latency["rounds"]["bare_librdkafka"], strict=True
                )
            ],
        }
    return summary
