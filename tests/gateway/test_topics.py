"""gateway.topics: MQTT 3.1.1 §4.7 topic rules and named-segment patterns (pure)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.topics import (
    InvalidTopic,
    Pattern,
    filter_matches,
    strip_share,
    validate_filter,
    validate_topic_name,
)
from tests.protocols.mqtt.strategies import levels, topic_filters, topic_names


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


def reference_match(topic_filter: str, topic_name: str) -> bool:
    """§4.7 as a regular expression: an independent oracle for :func:`filter_matches`."""
    if topic_name.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    parts = ["[^/]*" if level == "+" else re.escape(level) for level in topic_filter.split("/")]
    if parts[-1] == "\\#":
        parts.pop()
        regex = "/".join(parts) + "(/.*)?" if parts else ".*"
    else:
        regex = "/".join(parts)
    return re.fullmatch(regex, topic_name, re.DOTALL) is not None


@given(topic_filters(), topic_names)
def test_filter_matching_agrees_with_a_regular_expression(topic_filter: str, name: str) -> None:
    assert filter_matches(topic_filter, name) is reference_match(topic_filter, name)


@given(topic_names)
def test_a_topic_name_is_a_filter_matching_itself(name: str) -> None:
    assert filter_matches(validate_filter(name), validate_topic_name(name))


@given(st.text(max_size=20), st.text(max_size=20))
def test_matching_anything_is_a_bool_or_invalid_topic(topic_filter: str, name: str) -> None:
    try:
        assert filter_matches(topic_filter, name) in (True, False)
    except InvalidTopic:
        assert topic_filter.startswith("$share/")


@given(st.lists(levels | st.just("+") | st.sampled_from(["<x>", "<y>"]), min_size=1, max_size=4))
def test_a_pattern_captures_the_levels_its_filter_matches(pattern_levels: list[str]) -> None:
    try:
        pattern = Pattern.parse("/".join(pattern_levels))
    except InvalidTopic:
        return  # a name used twice
    concrete = "/".join("b" if level in ("+", "<x>", "<y>") else level for level in pattern_levels)
    for name in [concrete, "a/b", "$/a"]:
        captured = pattern.match(name)
        assert (captured is not None) is filter_matches(pattern.filter, name)
        if captured is not None:
            name_levels = name.split("/")
            assert captured == {key: name_levels[index] for index, key in pattern.names}
