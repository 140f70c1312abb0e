"""Services reach the token service only through shared libraries, never its internals."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("package", ["shared", "services/router", "services/rules"])
def test_no_import_of_the_token_service(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in _imports(path) if m.startswith("services.tokens")
        )
        for path in (ROOT / package).rglob("*.py")
    }
    assert not {p: m for p, m in offenders.items() if m}
