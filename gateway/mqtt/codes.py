"""MQTT return and reason codes, named: the only place their numbers are written.

Pure, no I/O. :class:`ReturnCode` is what a CONNACK of MQTT 3.1.1 answers
(§3.2.2.3); :class:`ConnackReason` the MQTT 5.0 CONNACK reason codes the bridge
tells apart (5.0 §3.2.2.2); :class:`SubackCode` what a SUBACK grants or refuses
(3.1.1 §3.9.3; in 5.0 every reason code from ``FAILURE`` up is a failure, §2.4).
"""

from enum import IntEnum
from typing import Final


class ReturnCode(IntEnum):
    """CONNACK return codes (MQTT 3.1.1 §3.2.2.3)."""

    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USERNAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


class ConnackReason(IntEnum):
    """The MQTT 5.0 CONNACK reason codes the bridge acts on (5.0 §3.2.2.2)."""

    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    BAD_USERNAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87


class SubackCode(IntEnum):
    """SUBACK return codes (3.1.1 §3.9.3): the QoS granted, or ``FAILURE``."""

    MAXIMUM_QOS_0 = 0
    MAXIMUM_QOS_1 = 1
    MAXIMUM_QOS_2 = 2
    #: Refused; in MQTT 5.0 every reason code from here up is a failure (5.0 §2.4).
    FAILURE = 0x80


#: The reason code of success (MQTT 5.0 §2.4), e.g. in an UNSUBACK; a plain int as
#: the broker's own codes are, so ``mqtt.ack`` events and their errors read the same.
SUCCESS: Final = 0
