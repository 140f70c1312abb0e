"""Schemathesis hooks for the contract tests (loaded through ``SCHEMATHESIS_HOOKS``).

A member may revoke or rotate its own token, and the stateful phase finds that token's id in
``GET /v1/tokens``: calls naming one of the test's own credentials
(``ALERTYARD_CONTRACT_PROTECTED``, comma-separated token and user ids) are not generated, so
no fuzzer takes away the credentials the test runs with.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

_PROTECTED = frozenset(filter(None, os.environ.get("ALERTYARD_CONTRACT_PROTECTED", "").split(",")))


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    params = case.path_parameters or {}
    return not any(str(value) in _PROTECTED for value in params.values())
