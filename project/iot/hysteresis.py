"""When a threshold opens or clears an alert: a two-state machine per threshold, pure.

An ``above`` threshold opens its alert when a value goes strictly over ``limit``
and clears it only once a value is back at or under ``limit - hysteresis``; a
``below`` threshold mirrors that (opens under ``limit``, clears at or over
``limit + hysteresis``). Values in between change nothing, so a reading that
hovers around the limit opens one alert and does not flap. With a hysteresis of
0 the alert clears as soon as the value is back within the limit.

::

      closed ──value beyond limit──▶ open
        ▲                             │
        └──value back past limit ∓ hysteresis
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

Direction = Literal["above", "below"]


def as_direction(value: str) -> Direction:
    """``value`` as a Direction; ``ValueError`` for anything but "above" or "below"."""
    if value == "above":
        return "above"
    if value == "below":
        return "below"
    raise ValueError(f'a direction is "above" or "below", not {value!r}')


class Transition(enum.Enum):
    OPEN = "opened"
    CLEAR = "cleared"


@dataclass(frozen=True)
class Rule:
    metric: str
    direction: Direction
    limit: float
    hysteresis: float = 0.0

    def breached_by(self, value: float) -> bool:
        return value > self.limit if self.direction == "above" else value < self.limit

    def cleared_by(self, value: float) -> bool:
        if self.direction == "above":
            return value <= self.limit - self.hysteresis
        return value >= self.limit + self.hysteresis


def step(rule: Rule, is_open: bool, value: float) -> Transition | None:
    """What ``value`` does to an alert that is open (or not): open it, clear it, or nothing."""
    if not is_open and rule.breached_by(value):
        return Transition.OPEN
    if is_open and rule.cleared_by(value):
        return Transition.CLEAR
    return None
