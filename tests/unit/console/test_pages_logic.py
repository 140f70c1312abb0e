"""The console's pure parts: paging links over next-only cursors, settings, escaping."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from services.console.pages.common import decode_trail, pager
from services.console.views import templates
from shared.settings import ConsoleSettings


def _query(href: str | None) -> dict[str, list[str]]:
    assert href is not None
    return parse_qs(urlsplit(href).query)


def test_paging_forward_and_back_over_next_only_cursors() -> None:
    first = pager("/alerts", {"team": "payments"}, cursor="", trail="", next_cursor="c1")
    assert (first.number, first.prev_href) == (1, None)
    assert _query(first.next_href) == {"team": ["payments"], "cursor": ["c1"], "trail": ["-"]}

    second = pager("/alerts", {"team": "payments"}, cursor="c1", trail="-", next_cursor="c2")
    assert second.number == 2
    assert second.prev_href == "/alerts?team=payments"
    assert _query(second.next_href)["trail"] == ["-.c1"]

    third = pager("/alerts", {"team": "payments"}, cursor="c2", trail="-.c1", next_cursor=None)
    assert (third.number, third.next_href) == (3, None)
    assert _query(third.prev_href) == {"team": ["payments"], "cursor": ["c1"], "trail": ["-"]}


def test_a_trail_keeps_only_cursor_shaped_parts() -> None:
    assert decode_trail('-.abc_-9.<script>."quoted"') == [None, "abc_-9"]
    cut = pager("/audit", {}, cursor="c9", trail="", next_cursor=None)
    assert cut.prev_href == "/audit"  # the trail was lost: back to the first page


def test_the_session_key_must_be_a_fernet_key() -> None:
    key = Fernet.generate_key().decode()
    settings = ConsoleSettings(session_key=key)
    assert settings.session_key is not None
    assert settings.session_key.get_secret_value() == key
    assert ConsoleSettings(session_key="").session_key is None
    with pytest.raises(ValidationError, match="Fernet key"):
        ConsoleSettings(session_key="too-short")


def test_templates_escape_whatever_their_name() -> None:
    hostile = '<img src=x onerror="alert(1)">'
    rendered = templates.env.from_string("{{ value }}").render(value=hostile)
    assert "<img" not in rendered
    assert "&lt;img" in rendered
