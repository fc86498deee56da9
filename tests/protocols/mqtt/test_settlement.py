"""protocols.mqtt.settlement: acknowledge once every instance handled; layer-down errors."""

from __future__ import annotations

import pytest

from gateway.exceptions import ChannelLayerUnavailable
from protocols.mqtt.settlement import Settlement, layer_was_down


def test_one_instance_acks_once_it_handled_and_routing_is_over() -> None:
    acks: list[str] = []
    settlement = Settlement(lambda: acks.append("ack"))
    handled = settlement.expect()
    handled()  # the instance handled it before routing was over: not yet
    assert acks == []
    settlement.routed()
    assert acks == ["ack"]


def test_several_instances_ack_only_after_the_last_one() -> None:
    acks: list[str] = []
    settlement = Settlement(lambda: acks.append("ack"))
    first, second = settlement.expect(), settlement.expect()
    settlement.routed()
    first()
    assert acks == []
    second()
    assert acks == ["ack"]


def test_a_message_routed_nowhere_is_acked_when_routing_ends() -> None:
    acks: list[str] = []
    Settlement(lambda: acks.append("ack")).routed()
    assert acks == ["ack"]


@pytest.mark.parametrize(
    ("error", "down"),
    [
        (None, False),
        (ValueError("a bug"), False),
        (ChannelLayerUnavailable("redis is down"), True),
    ],
)
def test_layer_was_down_for_the_error_itself(error: BaseException | None, down: bool) -> None:
    assert layer_was_down(error) is down


def test_layer_was_down_follows_causes_and_contexts() -> None:
    with pytest.raises(RuntimeError) as explicit:
        raise RuntimeError("wrapped") from ChannelLayerUnavailable("down")
    assert layer_was_down(explicit.value)
    with pytest.raises(KeyError) as implicit:
        _raise_while_handling(ChannelLayerUnavailable("down"))
    assert layer_was_down(implicit.value)


def _raise_while_handling(error: Exception) -> None:
    """Raise a KeyError while ``error`` is being handled: ``error`` is its context."""
    try:
        raise error
    except type(error):
        raise KeyError("raised while handling it")  # noqa: B904
