"""Properties of the web server's pure cores, over random inputs (Hypothesis).

Request targets and headers are whatever a client sends, so the scope builders,
the proxy-header resolver and the request checks must never raise anything but
their own refusal; response heads must round-trip and never let CR/LF through; the
body deadline must keep its two bounds. The WebSocket/ASGI state machine
(``protocols.websocket.session``) has its properties beside its unit tests, in
test_session.py (random sequences of application sends and client frames); the
server around it is fuzzed over sockets (test_fuzz.py), and websockets'
``ServerProtocol`` below it is websockets' own.
"""

from __future__ import annotations

from urllib.parse import unquote

from hypothesis import assume, given
from hypothesis import strategies as st

from protocols.websocket.body_deadline import BodyDeadline
from protocols.websocket.errors import ProtocolViolation
from protocols.websocket.proxy import TrustedProxies, resolve_forwarded
from protocols.websocket.request import RequestRefused, inspect_head
from protocols.websocket.response import response_head
from protocols.websocket.scope import ConnectionInfo, http_scope, split_target, websocket_scope

NAMES = st.sampled_from(
    [b"host", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-port", b"content-length",
     b"transfer-encoding", b"expect", b"upgrade", b"sec-websocket-protocol", b"cookie"]
) | st.binary(min_size=1, max_size=12)  # fmt: skip
VALUES = st.binary(max_size=40) | st.sampled_from(
    [b"1.2.3.4, 10.0.0.1", b"https", b"\xc2\xb2", b"9" * 5000, b"[::1]:80", b"a b", b"100-continue"]
)
HEADERS = st.lists(st.tuples(NAMES, VALUES), max_size=8)
ADDRESS = st.one_of(
    st.none(), st.tuples(st.sampled_from(["127.0.0.1", "10.0.0.1", "::1"]), st.integers(0, 65535))
)
PROXIES = st.one_of(
    st.none(), st.text(max_size=30).map(TrustedProxies.parse), st.just(TrustedProxies.parse("*"))
)
ROOT = st.sampled_from(["", "/app", "/a/b"])


@given(st.binary(max_size=80))
def test_split_target_never_raises_and_keeps_what_was_sent(target: bytes) -> None:
    parts = split_target(target)
    assert parts.path == unquote(parts.raw_path.decode("latin-1"))
    if target.startswith(b"/"):  # origin form: nothing dropped, nothing added
        assert parts.raw_path + (b"?" + parts.query_string if b"?" in target else b"") == target


@given(st.binary(max_size=60), HEADERS, ADDRESS, ROOT, PROXIES, st.booleans())
def test_scopes_are_built_from_anything(
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    client: tuple[str, int] | None,
    root_path: str,
    proxies: TrustedProxies | None,
    secure: bool,
) -> None:
    info = ConnectionInfo(client, ("127.0.0.1", 8000), secure)
    http = http_scope("GET", target, "1.1", headers, info, root_path=root_path, proxies=proxies)
    ws = websocket_scope(target, "1.1", headers, info, root_path=root_path, proxies=proxies)
    assert http["scheme"] in ("http", "https")
    assert ws["scheme"] in ("ws", "wss")
    assert http["path"].startswith(root_path)
    assert http["path"] == ws["path"]
    assert http["headers"] is headers
    assert all(isinstance(p, str) for p in ws["subprotocols"])


@given(HEADERS, ADDRESS, PROXIES)
def test_forwarded_values_are_sane_or_absent(
    headers: list[tuple[bytes, bytes]], peer: tuple[str, int] | None, proxies: TrustedProxies | None
) -> None:
    forwarded = resolve_forwarded(peer, headers, proxies or TrustedProxies())
    if forwarded is None:
        return
    assert forwarded.scheme in (None, "http", "https", "ws", "wss")
    assert forwarded.server_port is None or 0 <= forwarded.server_port <= 65535


@given(st.text(max_size=60), st.text(max_size=40))
def test_trusted_proxies_parse_and_answer_anything(spec: str, host: str) -> None:
    TrustedProxies.parse(spec).trusts(host)


@given(st.sampled_from(["1.0", "1.1"]), HEADERS)
def test_request_checks_refuse_only_with_400(
    version: str, headers: list[tuple[bytes, bytes]]
) -> None:
    try:
        facts = inspect_head(version, headers)
    except RequestRefused as refused:
        status = refused.status
        assert status == 400
        return
    hosts = [value for name, value in headers if name == b"host"]
    assert len(hosts) == 1 or (not hosts and version == "1.0")
    assert facts.has_body == any(
        name == b"transfer-encoding"
        or (name == b"content-length" and value.strip(b" \t") not in (b"0", b""))
        for name, value in headers
    )


FIELD_NAMES = st.from_regex(rb"[A-Za-z0-9\-]{1,12}", fullmatch=True)
FIELD_VALUES = st.binary(max_size=30).filter(lambda v: not any(c in v for c in b"\r\n\0"))


@given(st.integers(100, 599), st.lists(st.tuples(FIELD_NAMES, FIELD_VALUES), max_size=6))
def test_valid_response_heads_round_trip(status: int, headers: list[tuple[bytes, bytes]]) -> None:
    assume([n.lower() for n, _ in headers].count(b"content-length") == 0)
    head = response_head(status, headers)
    assert head.lines[0].startswith(b"HTTP/1.1 %d " % status)
    assert head.lines[1].startswith(b"date: ")
    parsed = [tuple(line[:-2].split(b": ", 1)) for line in head.lines[2:]]
    assert parsed == [(n, v) for n, v in headers if n.lower() != b"transfer-encoding"]


@given(
    st.one_of(st.integers(), st.none(), st.text(max_size=3)),
    st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=30)), max_size=6),
)
def test_response_heads_refuse_only_with_protocol_violation(
    status: object, headers: list[tuple[bytes, bytes]]
) -> None:
    try:
        head = response_head(status, headers)
    except ProtocolViolation:
        return
    for line in head.lines:  # no header can smuggle a line of its own
        assert line.endswith(b"\r\n")
        assert b"\r" not in line[:-2]
        assert b"\n" not in line[:-2]
    assert [line.lower().startswith(b"content-length:") for line in head.lines].count(True) <= 1


EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["received", "pause", "resume"]), st.floats(0, 5), st.integers(0, 10_000)
    ),
    max_size=20,
)


@given(st.floats(0.1, 30), st.floats(1, 10_000), EVENTS)
def test_body_deadline_keeps_both_bounds(
    timeout: float, min_rate: float, events: list[tuple[str, float, int]]
) -> None:
    """At most ``timeout`` after the last progress, and at most ``timeout`` plus one
    second per ``min_rate`` bytes of reading time; more body never brings it closer."""
    now = 0.0
    body = BodyDeadline(timeout, min_rate, now)
    last_progress, received, paused_at, paused_total = now, 0, None, 0.0
    for kind, step, size in events:
        now += step
        before = body.deadline()
        if kind == "received" and paused_at is None:
            body.received(size, now)
            received, last_progress = received + size, now
            assert body.deadline() >= before
        elif kind == "pause" and paused_at is None:
            body.pause(now)
            paused_at = now
            assert not body.expired(now + 1e9)  # no time counts while paused
        elif kind == "resume" and paused_at is not None:
            body.resume(now)
            paused_total += now - paused_at
            paused_at, last_progress = None, now
    assert body.deadline() <= last_progress + timeout + 1e-6
    assert body.deadline() <= paused_total + timeout + received / min_rate + 1e-6
