"""Proxy-header resolution: data in, data out."""

from __future__ import annotations

import pytest

from protocols.websocket.proxy import TrustedProxies, resolve_forwarded

TRUSTED = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8")


def xff(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"x-forwarded-for", v.encode()) for v in values]


def test_parse_accepts_addresses_networks_and_names() -> None:
    proxies = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8, ::1, unix:/run/app.sock")
    assert proxies.trusts("10.200.0.1")
    assert proxies.trusts("::1")
    assert proxies.trusts("unix:/run/app.sock")
    assert not proxies.trusts("192.168.1.1")
    assert not proxies.trusts("not-an-ip")


def test_star_trusts_everyone_and_unix_peers_are_trusted() -> None:
    assert TrustedProxies.parse("*").trusts("203.0.113.9")
    assert TrustedProxies.parse("").trusts(None)


def test_headers_from_an_untrusted_peer_are_ignored() -> None:
    assert resolve_forwarded(("203.0.113.5", 4000), xff("1.2.3.4"), TRUSTED) is None


def test_rightmost_untrusted_hop_is_the_client() -> None:
    # A client forged "6.6.6.6"; our proxy 10.0.0.2 appended the real peer 203.0.113.7.
    headers = xff("6.6.6.6, 203.0.113.7, 10.0.0.2")
    forwarded = resolve_forwarded(("127.0.0.1", 5000), headers, TRUSTED)
    assert forwarded is not None
    assert forwarded.client == ("203.0.113.7", 0)


def test_several_headers_form_one_list() -> None:
    headers = xff("6.6.6.6", "198.51.100.1")
    forwarded = resolve_forwarded(("127.0.0.1", 5000), headers, TRUSTED)
    assert forwarded is not None
    assert forwarded.client == ("198.51.100.1", 0)


def test_all_hops_trusted_takes_the_leftmost() -> None:
    forwarded = resolve_forwarded(("127.0.0.1", 1), xff("10.0.0.9, 10.0.0.2"), TRUSTED)
    assert forwarded is not None
    assert forwarded.client == ("10.0.0.9", 0)


@pytest.mark.parametrize(
    ("proto", "expected"), [("https", "https"), ("HTTP", "http"), ("gopher", None)]
)
def test_proto_and_port(proto: str, expected: str | None) -> None:
    headers = [(b"x-forwarded-proto", proto.encode()), (b"x-forwarded-port", b"8443")]
    forwarded = resolve_forwarded(("127.0.0.1", 1), headers, TRUSTED)
    assert forwarded is not None
    assert forwarded.scheme == expected
    assert forwarded.server_port == 8443
    assert forwarded.client is None


def test_proto_is_taken_at_the_client_hop_when_lists_line_up() -> None:
    headers = [
        *xff("203.0.113.7, 10.0.0.2"),
        (b"x-forwarded-proto", b"https, http"),
    ]
    forwarded = resolve_forwarded(("127.0.0.1", 1), headers, TRUSTED)
    assert forwarded is not None
    assert forwarded.scheme == "https"


def test_no_forwarding_headers_means_nothing_changes() -> None:
    assert resolve_forwarded(("127.0.0.1", 1), [(b"host", b"x")], TRUSTED) is None
