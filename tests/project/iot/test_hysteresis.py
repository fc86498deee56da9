"""The threshold state machine: opens beyond the limit, clears past the hysteresis band."""

from __future__ import annotations

import pytest

from project.iot.hysteresis import Rule, Transition, as_direction, step

OPEN, CLEAR = Transition.OPEN, Transition.CLEAR


def run(rule: Rule, values: list[float]) -> list[Transition | None]:
    """Feed ``values`` through the machine; the transition each one caused."""
    is_open, seen = False, []
    for value in values:
        transition = step(rule, is_open, value)
        is_open = {OPEN: True, CLEAR: False}.get(transition, is_open)  # type: ignore[arg-type]
        seen.append(transition)
    return seen


def test_above_opens_strictly_over_the_limit_and_clears_at_limit_minus_hysteresis() -> None:
    rule = Rule("t", "above", 30.0, 2.0)
    values = [30.0, 30.1, 35, 29, 28.01, 30.5, 28.0, 27, 31]
    assert run(rule, values) == [None, OPEN, None, None, None, None, CLEAR, None, OPEN]


def test_below_mirrors_above() -> None:
    rule = Rule("t", "below", 10.0, 1.5)
    values = [10.0, 9.9, 5, 11, 11.49, 11.5, 9]
    assert run(rule, values) == [None, OPEN, None, None, None, CLEAR, OPEN]


def test_a_value_hovering_at_the_limit_does_not_flap() -> None:
    rule = Rule("t", "above", 30.0, 1.0)
    hovering = [30.2, 29.8, 30.3, 29.5, 30.1, 29.9] * 20
    transitions = [t for t in run(rule, hovering) if t is not None]
    assert transitions == [OPEN]


def test_without_hysteresis_back_within_the_limit_clears() -> None:
    assert run(Rule("t", "above", 30.0), [31, 30, 31]) == [OPEN, CLEAR, OPEN]


def test_direction_is_checked() -> None:
    assert as_direction("below") == "below"
    with pytest.raises(ValueError, match='"above" or "below"'):
        as_direction("over")
