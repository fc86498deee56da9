"""When a received QoS 1/2 message may be acknowledged, and when it must not be.

The bridge acknowledges a message (its PUBACK) only once every instance it was
queued for has handled it (MQTT 3.1.1 and 5.0 §4.3.2: the receiver sends PUBACK
"having accepted ownership of the Application Message"), so a message lost with a
crash is resent by the broker. Pure, no
I/O; the dispatcher (:mod:`protocols.mqtt.dispatch`) uses both names below.
"""

from __future__ import annotations

from gateway.exceptions import ChannelLayerUnavailable
from protocols.instances import Handled
from protocols.mqtt.link import Ack


class Settlement:
    """Acknowledges a received message once each instance it went to has handled it.

    Routing itself counts as one holder until :meth:`routed`, so a message whose
    first instance handles it before the second is queued is not acknowledged early.
    """

    __slots__ = ("ack", "waiting")

    def __init__(self, ack: Ack) -> None:
        self.ack = ack
        self.waiting = 1  # routing itself, until routed()

    def expect(self) -> Handled:
        """One more instance to wait for; the callback it calls once it handled it."""
        self.waiting += 1
        return self._handled

    def routed(self) -> None:
        """Routing is over: no more instances will be expected."""
        self._handled()

    def _handled(self) -> None:
        self.waiting -= 1
        if self.waiting == 0:
            self.ack()


def layer_was_down(error: BaseException | None) -> bool:
    """Whether ``error`` (or what caused it) is the channel layer being unreachable.

    Such a message was not handled: it is retried and never acknowledged, while one
    the consumer raised on for any other reason counts as handled (acknowledged, not
    retried forever).
    """
    while error is not None:
        if isinstance(error, ChannelLayerUnavailable):
            return True
        error = error.__cause__ or error.__context__
    return False
