"""Every Lua script names its keys only through ``KEYS`` (Redis Cluster routes by them, #14).

Redis 7.0 lets a script touch an undeclared key as long as the node owns its slot, so the
one-node cluster in tests/integration/test_redis_cluster_keys.py cannot catch it: this reads
each script and checks the key argument of every ``redis.call`` is ``KEYS[...]`` or a local
bound to one, never a name built from ``ARGV`` or text.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for d in ("shared", "services") for p in (ROOT / d).rglob("*.py"))
_CALL = re.compile(r"redis\.p?call\(\s*'(\w+)'\s*,\s*([^,)]+)")
_KEY_LOCAL = re.compile(r"local\s+(\w+)\s*=\s*KEYS\[")
_NO_KEY = {"TIME", "PUBLISH", "ECHO", "PING"}


def _scripts() -> list[tuple[str, str]]:
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            if "redis.call(" in node.value or "redis.pcall(" in node.value:
                found.append((f"{path.relative_to(ROOT)}:{node.lineno}", node.value))
    return found


SCRIPTS = _scripts()


def test_the_scripts_are_found() -> None:
    """Stage, acquire, extend, release, fenced delete, decision write (a new one adds here)."""
    assert len(SCRIPTS) >= 6, [where for where, _ in SCRIPTS]


def test_every_script_call_site_passes_a_checked_script() -> None:
    """``eval``/``register_script`` take a module constant (a script checked here), never an
    inline string built at the call."""
    pattern = re.compile(r"\b(?:register_script|\.eval)\(\s*([^,)]+)")
    for path in SOURCES:
        for match in pattern.finditer(path.read_text()):
            argument = match.group(1).strip()
            assert re.fullmatch(r"_[A-Z_]+", argument), f"{path}: {argument}"


@pytest.mark.parametrize(("where", "script"), SCRIPTS, ids=[w for w, _ in SCRIPTS])
def test_keys_only_through_KEYS(where: str, script: str) -> None:
    key_locals = set(_KEY_LOCAL.findall(script))
    calls = _CALL.findall(script)
    assert calls, where
    for command, key in calls:
        if command.upper() in _NO_KEY:
            continue
        key = key.strip()
        assert key.startswith("KEYS[") or key in key_locals, f"{where}: {command} {key}"
