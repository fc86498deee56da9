"""Device payloads: every way to get them wrong is refused with a reason."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from project.iot.payloads import (
    SAMPLE_CHARS,
    BadPayload,
    Limits,
    parse_ack,
    parse_status,
    parse_telemetry,
    sample,
)

LIMITS = Limits(max_bytes=1024, max_metrics=3)


def test_telemetry_is_an_object_of_named_numbers() -> None:
    payload = b'{"temperature": 21.5, "humidity": 40, "rssi.dbm": -71}'
    assert parse_telemetry(payload, LIMITS) == {
        "temperature": 21.5,
        "humidity": 40,
        "rssi.dbm": -71,
    }


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"21.5", "not a JSON object of metrics (got number)"),
        (b"[1, 2]", "not a JSON object of metrics (got array)"),
        (b"null", "not a JSON object of metrics (got null)"),
        (b"{}", "no metrics"),
        (b"{'t': 1}", "not JSON"),
        (b'{"t": 1', "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"t": true}', "metric 't' is not a number (got boolean)"),
        (b'{"t": "21"}', "metric 't' is not a number (got string)"),
        (b'{"t": null}', "metric 't' is not a number (got null)"),
        (b'{"t": {"v": 1}}', "metric 't' is not a number (got object)"),
        (b'{"t": NaN}', "NaN is not a number JSON allows"),
        (b'{"t": -Infinity}', "-Infinity is not a number JSON allows"),
        (b'{"t": 1e999}', "metric 't' is not a finite number"),
        (b'{"t": 1' + b"0" * 400 + b"}", "metric 't' is not a finite number"),
        (b'{"a": 1, "b": 2, "c": 3, "d": 4}', "4 metrics exceed the limit of 3"),
        (b'{"": 1}', "metric name '' is not 1-64"),
        (b'{"temp C": 1}', "metric name 'temp C' is not 1-64"),
        (b'{"' + b"x" * 65 + b'": 1}', "is not 1-64"),
        (b"[" * 200 + b"]" * 200, "got array"),
        (b" " * 1025, "payload of 1025 bytes exceeds the limit of 1024"),
    ],
)
def test_bad_telemetry_is_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(BadPayload) as refused:
        parse_telemetry(payload, LIMITS)
    assert reason in refused.value.reason


def test_deep_nesting_is_refused_not_a_crash() -> None:
    with pytest.raises(BadPayload, match="nested too deeply"):
        parse_telemetry(b"[" * 5000, Limits(max_bytes=10_000, max_metrics=3))


@pytest.mark.parametrize(
    ("payload", "online"),
    [
        (b"online", True),
        (b"OFFLINE\n", False),
        (b'{"status": "online"}', True),
        (b'{"status": "Offline", "since": 3}', False),
    ],
)
def test_status(payload: bytes, online: bool) -> None:
    assert parse_status(payload) is online


@pytest.mark.parametrize(
    "payload", [b"up", b"", b'{"status": 1}', b'{"online": true}', b"[1]", b"{", b"o" * 300]
)
def test_bad_status_is_refused(payload: bytes) -> None:
    with pytest.raises(BadPayload):
        parse_status(payload)


def test_ack() -> None:
    command_id = uuid.uuid4()
    ok = parse_ack(json.dumps({"id": str(command_id), "ok": True, "result": [1]}).encode(), 256)
    assert (ok.command_id, ok.ok, ok.result, ok.reason) == (command_id, True, [1], "")
    failed = parse_ack(
        json.dumps({"id": str(command_id), "ok": False, "error": "busy"}).encode(), 256
    )
    assert (failed.ok, failed.result, failed.reason) == (False, None, "busy")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ([], "an ack must be a JSON object (got array)"),
        ({"ok": True}, "not a command id"),
        ({"id": "42", "ok": True}, "not a command id"),
        ({"id": str(uuid.UUID(int=1)), "ok": "yes"}, "'ok' must be true or false (got string)"),
        ({"id": str(uuid.UUID(int=1)), "ok": False, "reason": 3}, "'reason' must be a string"),
    ],
)
def test_bad_ack_is_refused(content: object, reason: str) -> None:
    with pytest.raises(BadPayload, match=re.escape(reason)):
        parse_ack(json.dumps(content).encode(), 256)


def test_sample_is_short_text_whatever_the_bytes() -> None:
    assert sample(b"\xff" + b"a" * 1000) == "\ufffd" + "a" * (SAMPLE_CHARS - 1)
