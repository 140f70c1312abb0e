"""Run every benchmark and print a summary; results also go to bench/results/ as JSON."""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from pathlib import Path

import bench


def main() -> int:
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    only = set(sys.argv[1:])
    names = [m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")]
    for name in sorted(names):
        if only and name.removeprefix("bench_") not in only:
            continue
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name}", flush=True)
        result = module.run()
        (out / f"{name}.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
