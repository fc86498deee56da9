"""gateway.topics: MQTT 3.1.1 §4.7 topic rules and named-segment patterns (pure)."""

from __future__ import annotations

import pytest

from gateway.topics import (
    InvalidTopic,
    Pattern,
    filter_matches,
    strip_share,
    validate_filter,
    validate_topic_name,
)


@pytest.mark.parametrize(
    ("topic_filter", "topic_name", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+/c", "a//c", True),  # an empty level is a level (§4.7.1.3)
        ("a/#", "a", True),  # '#' includes the parent level (§4.7.1.2)
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("#", "$SYS/x", False),  # wildcards never match a leading '$' (§4.7.2)
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("a/b", "a/b/c", False),
        ("$share/g/a/+", "a/b", True),
        ("+", "/", False),
    ],
)
def test_filter_matches(topic_filter: str, topic_name: str, expected: bool) -> None:
    assert filter_matches(topic_filter, topic_name) is expected


@pytest.mark.parametrize("bad", ["a/#/b", "a/b#", "a/+b", "", "$share/g", "$share//a"])
def test_invalid_filters_are_refused(bad: str) -> None:
    with pytest.raises(InvalidTopic):
        validate_filter(bad)


@pytest.mark.parametrize("bad", ["", "a/+", "a/#", "a\x00b"])
def test_invalid_topic_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidTopic):
        validate_topic_name(bad)


def test_strip_share() -> None:
    assert strip_share("$share/workers/devices/+/t") == "devices/+/t"
    assert strip_share("devices/+/t") == "devices/+/t"


def test_pattern_captures_named_levels() -> None:
    pattern = Pattern.parse("devices/<device_id>/sensors/<sensor>/#")
    assert pattern.filter == "devices/+/sensors/+/#"
    assert pattern.match("devices/d1/sensors/t0/raw/x") == {"device_id": "d1", "sensor": "t0"}
    assert pattern.match("devices/d1/sensors") is None
    assert Pattern.parse("a/+/b").match("a/x/b") == {}


@pytest.mark.parametrize("bad", ["a/<x>/<x>", "a/<1x>", "a/b<x>", "a/#/b", "$share/g/a"])
def test_bad_patterns_are_refused(bad: str) -> None:
    with pytest.raises(InvalidTopic):
        Pattern.parse(bad)


def test_pattern_join_nests() -> None:
    joined = Pattern.parse("devices/<device_id>").join(Pattern.parse("status/#"))
    assert joined.pattern == "devices/<device_id>/status/#"
    assert joined.match("devices/d9/status/up") == {"device_id": "d9"}
    with pytest.raises(InvalidTopic):
        Pattern.parse("a/#").join(Pattern.parse("b"))
