"""Flood control with an injected clock."""

from __future__ import annotations

import pytest

from protocols.telegram.flood import FloodControl, FloodLimits, Window, is_paced


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_per_chat_window_spaces_calls_in_one_chat_only() -> None:
    clock = Clock()
    control = FloodControl(FloodLimits(None, Window(1, 1.0), None), clock)
    assert [control.reserve("sendMessage", 1) for _ in range(3)] == [0.0, 1.0, 2.0]
    assert control.reserve("sendMessage", 2) == 0.0
    clock.now += 10
    assert control.reserve("sendMessage", 1) == 0.0


def test_burst_then_average_rate() -> None:
    control = FloodControl(FloodLimits(None, Window(3, 3.0), None), Clock())
    assert [control.reserve("sendPhoto", 5) for _ in range(5)] == [0, 0, 0, 3.0, 3.0]


def test_overall_limit_spans_chats() -> None:
    control = FloodControl(FloodLimits(Window(30, 1.0), None, None), Clock())
    delays = [control.reserve("sendMessage", chat) for chat in range(31)]
    assert delays[:30] == [0.0] * 30
    assert delays[30] == 1.0


def test_groups_use_the_per_group_window() -> None:
    control = FloodControl(FloodLimits(None, Window(100, 1.0), Window(20, 60.0)), Clock())
    delays = [control.reserve("sendMessage", -100) for _ in range(21)]
    assert delays[-1] == 60.0
    assert control.reserve("sendMessage", 100) == 0.0


def test_non_sending_methods_are_not_paced() -> None:
    control = FloodControl(FloodLimits(None, Window(1, 1.0), None), Clock())
    assert not is_paced("sendChatAction")
    assert not is_paced("answerCallbackQuery")
    assert [control.reserve("answerCallbackQuery", 1) for _ in range(3)] == [0, 0, 0]


def test_retry_after_pauses_a_chat() -> None:
    clock = Clock()
    control = FloodControl(FloodLimits.off(), clock)
    control.pause(1, 5)
    assert control.paused_for(1) == 5.0
    assert control.paused_for(2) == 0.0
    clock.now += 2
    assert control.paused_for(1) == 3.0


def test_state_is_pruned_to_active_chats() -> None:
    clock = Clock()
    control = FloodControl(FloodLimits(None, Window(1, 1.0), None), clock)
    for chat in range(FloodControl.PRUNE_EVERY - 1):
        control.reserve("sendMessage", chat)
    clock.now += 5
    control.reserve("sendMessage", "last")
    assert len(control) == 1


def test_windows_must_be_sane() -> None:
    with pytest.raises(ValueError, match="limit >= 1"):
        Window(0, 1.0)
