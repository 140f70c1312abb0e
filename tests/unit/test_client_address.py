"""Which address the failed-authentication limiter counts against (shared.http_auth)."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from shared.http_auth import ClientAddress


def _request(peer: str, headers: list[tuple[str, str]]) -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "client": (peer, 1234),
    }
    return Request(scope)


XFF = "X-Forwarded-For"


@pytest.mark.parametrize(
    ("header", "peer", "headers", "expected"),
    [
        # No header configured: the peer, whatever the client sends.
        (None, "10.0.0.5", [(XFF, "1.2.3.4")], "10.0.0.5"),
        # From a trusted proxy: the right-most address it did not add itself.
        (XFF, "127.0.0.1", [(XFF, "1.2.3.4")], "1.2.3.4"),
        (XFF, "127.0.0.1", [(XFF, "6.6.6.6, 1.2.3.4")], "1.2.3.4"),  # client forged the left
        (XFF, "127.0.0.1", [(XFF, "1.2.3.4, 127.0.0.1")], "1.2.3.4"),  # two trusted hops
        (XFF, "127.0.0.1", [(XFF, "6.6.6.6"), (XFF, "1.2.3.4")], "1.2.3.4"),  # repeated header
        (XFF, "127.0.0.1", [(XFF, "garbage, 1.2.3.4")], "1.2.3.4"),
        (XFF, "127.0.0.1", [(XFF, "1.2.3.4, garbage")], "127.0.0.1"),
        (XFF, "127.0.0.1", [], "127.0.0.1"),
        # From an untrusted peer the header is ignored: it cannot pick its own key.
        (XFF, "10.0.0.5", [(XFF, "1.2.3.4")], "10.0.0.5"),
        ("X-Real-IP", "::1", [("X-Real-IP", "2001:db8::1")], "2001:db8::1"),
    ],
)
def test_client_address(
    header: str | None, peer: str, headers: list[tuple[str, str]], expected: str
) -> None:
    assert ClientAddress(header).of(_request(peer, headers)) == expected


def test_trusted_networks_are_configurable() -> None:
    address = ClientAddress(XFF, ("10.0.0.0/8",))
    assert address.of(_request("10.1.2.3", [(XFF, "8.8.8.8")])) == "8.8.8.8"
    assert address.of(_request("127.0.0.1", [(XFF, "8.8.8.8")])) == "127.0.0.1"


def test_a_bad_trusted_network_fails_at_start() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        ClientAddress(XFF, ("not-a-network",))
