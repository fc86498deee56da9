"""protocols.mqtt.subscriptions: the instances' dynamic subscriptions, data in, data out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.topics import filter_matches
from protocols.mqtt.subscriptions import DynamicSubscriptions
from tests.protocols.mqtt.strategies import topic_filters, topic_names


def test_dynamic_subscriptions() -> None:
    subs = DynamicSubscriptions()
    subs.add("k1", "a/+", 0)
    subs.add("k2", "a/#", 1)
    subs.add("k2", "$share/g/b/#", 1)
    assert subs.filters() == {"a/+": 0, "a/#": 1, "$share/g/b/#": 1}
    assert subs.matches("a/x") == [("k1", "a/+"), ("k2", "a/#")]
    assert subs.matches("b/y") == [("k2", "$share/g/b/#")]
    subs.remove("k1", "a/+")
    assert not subs.in_use("a/+")
    assert sorted(subs.drop("k2")) == ["$share/g/b/#", "a/#"]
    assert subs.filters() == {}


@given(st.dictionaries(st.integers(0, 3), st.lists(topic_filters(), max_size=3)), topic_names)
def test_dynamic_subscriptions_find_exactly_the_matching_keys(
    subscribed: dict[int, list[str]], name: str
) -> None:
    subscriptions = DynamicSubscriptions()
    for key, filters in subscribed.items():
        for topic_filter in filters:
            subscriptions.add(key, topic_filter, 0)
    found = dict(subscriptions.matches(name))
    wanted = {
        key for key, filters in subscribed.items() if any(filter_matches(f, name) for f in filters)
    }
    assert set(found) == wanted
    assert all(filter_matches(found[key], name) for key in found)
