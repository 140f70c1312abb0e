"""The figures next to their targets and same-run baselines (brief §8, issue #13)."""

from __future__ import annotations

from typing import Any

__all__ = ["summarise"]


def _rate(loops: dict[str, Any], name: str) -> float | None:
    figure = loops.get(name)
    return float(figure["per_s"]) if isinstance(figure, dict) else None


def _best(loops: dict[str, Any], name: str) -> float | None:
    figure = loops.get(name)
    best = figure.get("best_round_per_s") if isinstance(figure, dict) else None
    return float(best) if best else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    throughput = result.get("throughput")
    if throughput and "error" not in throughput:
        loops = throughput["loops"]
        router = _rate(loops, "router_at_least_once")
        ceiling = _rate(loops, "bare_librdkafka")
        quix = _rate(loops, "quix_streams")
        best = _best(loops, "router_at_least_once")
        summary["router_vs_bare_librdkafka"] = {
            "ratio": _ratio(router, ceiling),
            "ratio_best_rounds": _ratio(best, _best(loops, "bare_librdkafka")),
            "target": ">= 0.5",
            "met": (_ratio(router, ceiling) or 0) >= 0.5,
        }
        summary["router_vs_quix_streams"] = {
            "ratio": _ratio(router, quix),
            "ratio_best_rounds": _ratio(best, _best(loops, "quix_streams")),
            "target": ">= 2.0",
            "met": (_ratio(router, quix) or 0) >= 2.0,
        }
        summary["router_vs_bare_aiokafka"] = _ratio(router, _rate(loops, "bare_aiokafka"))
        summary["decisions_topic_on_vs_off"] = _ratio(
            router, _rate(loops, "router_decisions_in_memory")
        )
        summary["exactly_once_vs_at_least_once"] = _ratio(
            _rate(loops, "router_exactly_once"), router
        )
    latency = result.get("latency")
    if latency and "error" not in latency:
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


def _cell(figure: Any) -> str:
    if isinstance(figure, dict):
        rounds = ", ".join(f"{r:,}" for r in figure["per_s_by_round"])
        return f"{figure['per_s']:,}/s (rounds {rounds}; best {figure['best_round_per_s']:,})"
    return str(figure)


def markdown(result: dict[str, Any]) -> str:
    """The figures as the Markdown tables of docs/benchmarks.md."""
    out: list[str] = []
    failures: list[str] = []
    for name, part in result.items():
        failed = [p for p in (part if isinstance(part, list) else [part]) if "error" in p]
        failures += [f"- {name} failed: {p}" for p in failed if isinstance(p, dict)]
    throughput = result.get("throughput")
    if throughput and "error" not in throughput:
        out += ["| loop | alerts/s | router (at least once) ÷ loop |", "|---|---|---|"]
        loops = throughput["loops"]
        router = _rate(loops, "router_at_least_once")
        for name, figure in loops.items():
            ratio = _ratio(router, _rate(loops, name)) if name != "router_at_least_once" else None
            out.append(f"| {name} | {_cell(figure)} | {ratio if ratio else '—'} |")
        stages = loops.get("router_at_least_once", {}).get("stages_us")
        if stages:
            out += [
                "",
                "Router stages (us per record): "
                + ", ".join(f"{k} {v}" for k, v in stages.items()),
            ]
    latency = result.get("latency")
    if latency and "error" not in latency:
        out += ["", "| at 2,000/s | p50 ms | p99 ms | max ms |", "|---|---|---|---|"]
        for name in ("bare_librdkafka", "router"):
            for n, r in enumerate(latency["rounds"][name], 1):
                out.append(f"| {name} round {n} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} |")
    http = result.get("http_under_load")
    if http and "error" not in http:
        out += ["", "| HTTP GET | p50 ms | p99 ms | max ms | requests |", "|---|---|---|---|---|"]
        for when in ("under_load", "idle"):
            for route in ("lookup", "healthz"):
                r = http[when][route]
                out.append(
                    f"| {route} {when} | {r.get('p50_ms')} | {r.get('p99_ms')} | "
                    f"{r.get('max_ms')} | {r['requests']} |"
                )
        out.append(f"\nRouted while probed: {http['routed_per_s_while_probed']:,}/s")
    scale = result.get("scale_out")
    if scale:
        out += ["", "| routers | total/s | per process/s | lookups found |", "|---|---|---|---|"]
        for s in scale:
            if "error" in s:
                continue
            per = ", ".join(f"{p:,}" for p in s["per_process_per_s"])
            found = ", ".join(s["lookups_found_per_process"])
            out.append(f"| {s['processes']} | {s['total_per_s']:,} | {per} | {found} |")
    pauses = [p for p in result.get("routing_pause", []) if "error" not in p]
    if pauses:
        out += [
            "",
            "| protocol | alerts/s | event | kept partitions | largest gap kept (ms) "
            "| largest gap all (ms) | rebalance (s) | quiet gap (ms) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        notes: list[str] = []
        for p in pauses:
            if "error" in p:
                continue
            if "at_2000_per_s" in p:
                notes.append(f"{p['protocol']} at 2,000/s: {p['at_2000_per_s']}")
            for event in ("join", "leave"):
                e = p[event]
                out.append(
                    f"| {p['protocol']} | {p['rate_per_s']} | {event} | {e['partitions_kept']} | "
                    f"{e['largest_gap_kept_ms']} | {e['largest_gap_all_ms']} | "
                    f"{e['rebalance_s']} | {p['quiet_window_largest_gap_ms']} |"
                )
        out += ["", *notes]
    load = result.get("load_average")
    if load:
        out.append(f"\nLoad average before/after: {load['before'][0]:.1f} / {load['after'][0]:.1f}")
    if failures:
        out += ["", *failures]
    return "\n".join(out)


if __name__ == "__main__":
    import json
    import sys
    from pathlib import Path

    print(markdown(json.loads(Path(sys.argv[1]).read_text())))
