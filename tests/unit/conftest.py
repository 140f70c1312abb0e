"""Unit tests run every retry policy (shared.retries) without waiting between attempts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stamina


@pytest.fixture(autouse=True)
def instant_retries() -> Iterator[None]:
    with stamina.set_testing(True, attempts=100):  # enough for any scripted failure run
        yield
